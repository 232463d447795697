"""Test-time scaling on the shipped tiny Sudoku model: MRO vs vanilla and baselines.

500 held-out puzzles (10-12 blanks, several solutions allowed), 3 decoding seeds, at the hard
setting (3 tokens per step = 4 steps) and at half its tokens per step (8 steps). Methods:
vanilla (greedy, and sampled at the search temperature), TTS-MRO (k = 4, segments of w = 1 step,
and w = 2, R_tv + R_ppl + R_q), TTS-CBR and best-of-n given at least TTS-MRO (w = 1)'s DLM
forward passes.
Mean +- std over seeds of the solved rate; DLM forward passes per puzzle.

    python benchmarks/tts_sudoku.py       # -> benchmarks/results/tts_sudoku.{json,md,png}
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

from mro.eval.harness import EvalConfig, run_eval
from mro.eval.records import hardware, now

RESULTS = Path(__file__).parent / "results"
RUNS = Path("runs/bench_tts")
N, SEEDS, TEMP, K, W = 500, (0, 1, 2), 0.5, 4, 1
STEPS = (4, 8)


def evaluate(decode: str, seed: int, temperature: float, only: int | None = None, **search) -> dict:
    tag = "_".join([decode, f"t{temperature}", f"s{seed}"] + [f"{k}{v}" for k, v in search.items()]
                   + ([f"steps{only}"] if only else []))
    out = RUNS / tag
    shutil.rmtree(out, ignore_errors=True)
    s = run_eval(EvalConfig(model="sudoku-tiny", task="sudoku", n=N, task_options="min_blanks=10,max_blanks=12",
                            steps=[only] if only else list(STEPS), decode=decode, temperature=temperature, seed=seed, out=str(out),
                            batch_size=250, progress=False, **search))
    return {r["steps"]: r for r in s["results"]}


def bon_n_for(nfe: float, steps: int) -> int:
    """Fewest whole responses whose forward passes (first step shared) reach ``nfe``."""
    n = 1
    while n * steps - (n - 1) < nfe:
        n += 1
    return n


def main() -> dict:
    RESULTS.mkdir(exist_ok=True)
    methods: dict[str, dict[int, list[dict]]] = {}

    def add(name, per_seed):
        methods[name] = {st: [r[st] for r in per_seed] for st in STEPS}

    add("vanilla, greedy", [evaluate("vanilla", 0, 0.0)])
    add(f"vanilla, T={TEMP}", [evaluate("vanilla", s, TEMP) for s in SEEDS])
    add(f"TTS-MRO k={K} w={W}", [evaluate("tts-mro", s, TEMP, k=K, w=W) for s in SEEDS])
    add(f"TTS-MRO k={K} w=2", [evaluate("tts-mro", s, TEMP, k=K, w=2) for s in SEEDS])
    mro_nfe = {st: methods[f"TTS-MRO k={K} w={W}"][st][0]["nfe_per_example"] for st in STEPS}
    # baselines at >= TTS-MRO's DLM forward passes
    for st in STEPS:
        n = bon_n_for(mro_nfe[st], st)
        for select in ("vote", "reward"):
            name = f"best-of-n ({select})"
            res = [evaluate("best-of-n", s, TEMP, k=n, select=select, only=st) for s in SEEDS]
            methods.setdefault(name, {})[st] = [r[st] for r in res]
    # TTS-CBR: with w=1 every candidate of a segment shares one forward, so any k costs the same;
    # it gets 16 candidates (4x TTS-MRO's)
    add("TTS-CBR k=16 w=1", [evaluate("tts-cbr", s, TEMP, k=16, w=1) for s in SEEDS])
    table = {}
    for name, per_steps in methods.items():
        table[name] = {}
        for st, rows in per_steps.items():
            solved = [100 * r["solved"] for r in rows]
            table[name][st] = {"mean": statistics.mean(solved), "std": statistics.stdev(solved) if len(solved) > 1 else 0.0,
                               "nfe": rows[0]["nfe_per_example"], "scorer": rows[0]["scorer_calls_per_example"],
                               "seeds": len(rows)}
    lines = ["| method | " + " | ".join(f"{st} steps ({12 / st:g} tok/step): solved % | NFE" for st in STEPS) + " |",
             "|---|" + "---|---|" * len(STEPS)]
    for name, per_steps in table.items():
        cells = []
        for st in STEPS:
            c = per_steps[st]
            cells += [f"{c['mean']:.1f} ± {c['std']:.1f}", f"{c['nfe']:.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    mro = table[f"TTS-MRO k={K} w={W}"]
    van = table["vanilla, greedy"]
    claim = (f"speed claim (TTS-MRO at half the steps vs vanilla greedy at full steps): TTS-MRO@{STEPS[0]} "
             f"{mro[STEPS[0]]['mean']:.1f}% vs vanilla@{STEPS[1]} {van[STEPS[1]]['mean']:.1f}%: "
             + ("reached" if mro[STEPS[0]]["mean"] >= van[STEPS[1]]["mean"] else "NOT reached"))
    hw = hardware()
    lines += ["", claim, "",
              f"model sudoku-tiny; {N} held-out puzzles with 10-12 blanks (data seed 1234); seeds {list(SEEDS)} "
              f"(greedy vanilla is deterministic: one run); temperature {TEMP}; NFE = DLM forward passes per puzzle "
              f"(leave-one-out verification rows included); PPL scorer sudoku-ar-tiny; {hw['processor']}, torch {hw['torch']}"]
    (RESULTS / "tts_sudoku.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "tts_sudoku.json").write_text(json.dumps({"table": table, "claim": claim, "hardware": hw, "date": now(),
                                                         "temperature": TEMP, "k": K, "w": W}, indent=2))
    plot(table)
    print("\n".join(lines))
    return table


def plot(table: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, per_steps in table.items():
        xs = [per_steps[st]["nfe"] for st in STEPS]
        ys = [per_steps[st]["mean"] for st in STEPS]
        ax.errorbar(xs, ys, yerr=[per_steps[st]["std"] for st in STEPS], marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("DLM forward passes per puzzle (log)")
    ax.set_ylabel("solved %")
    ax.set_title("sudoku-tiny: 4 steps (left of each line) and 8 steps")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "tts_sudoku.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
