"""Test-time scaling on a shipped tiny model: MRO vs vanilla and baselines at equal forward passes.

Run by ``tts_sudoku.py`` (:data:`SUDOKU`) and ``tts_countdown.py`` (:data:`COUNTDOWN`); each
:class:`Setting` names the model, problems and step counts. Methods, on held-out generator problems, 3 decoding seeds, at two
step counts: vanilla (greedy, and sampled at the search temperature), TTS-MRO (k = 4, segments of
w = 1 step, and w = 2, R_tv + R_ppl + R_q), TTS-CBR and best-of-n given at least TTS-MRO
(w = 1)'s DLM forward passes. Mean +- std over seeds of the solved rate; DLM forward passes per
problem.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from mro.eval.harness import EvalConfig, run_eval
from mro.eval.records import hardware, now
from mro.tasks import get_task

RESULTS = Path(__file__).resolve().parents[1] / "results"
SEEDS, TEMP, K, W = (0, 1, 2), 0.5, 4, 1


@dataclass(frozen=True)
class Setting:
    stem: str  # output files benchmarks/results/<stem>.{json,md,png}
    model: str
    task: str
    task_options: str
    n: int
    steps: tuple[int, int]  # the hard setting, then twice its steps
    length: int  # response positions (tokens per step = length / steps)
    described: str  # the problems, for the footer


SUDOKU = Setting(stem="tts_sudoku", model="sudoku-tiny", task="sudoku", task_options="min_blanks=10,max_blanks=12",
                 n=500, steps=(4, 8), length=12, described="held-out puzzles with 10-12 blanks")
COUNTDOWN = Setting(stem="tts_countdown", model="countdown-tiny", task="countdown",
                    task_options="n_numbers=3,max_number=100,max_target=100", n=500, steps=(5, 10), length=20,
                    described="held-out 3-number problems (numbers 1-100, targets up to 100)")


def evaluate(s: Setting, decode: str, seed: int, temperature: float, only: int | None = None, **search) -> dict:
    tag = "_".join([decode, f"t{temperature}", f"s{seed}"] + [f"{k}{v}" for k, v in search.items()]
                   + ([f"steps{only}"] if only else []))
    out = Path("runs") / f"bench_{s.stem}" / tag  # mro eval resumes a run there, skipping rows already written
    summary = run_eval(EvalConfig(model=s.model, task=s.task, n=s.n, task_options=s.task_options,
                                  steps=[only] if only else list(s.steps), decode=decode, temperature=temperature,
                                  seed=seed, out=str(out), batch_size=250, progress=False, **search))
    return {r["steps"]: r for r in summary["results"]}


def bon_n_for(nfe: float, steps: int) -> int:
    """Fewest whole responses whose forward passes (first step shared) reach ``nfe``."""
    n = 1
    while n * steps - (n - 1) < nfe:
        n += 1
    return n


def main(s: Setting) -> dict:
    RESULTS.mkdir(exist_ok=True)
    methods: dict[str, dict[int, list[dict]]] = {}

    def add(name, per_seed):
        methods[name] = {st: [r[st] for r in per_seed] for st in s.steps}

    add("vanilla, greedy", [evaluate(s, "vanilla", 0, 0.0)])
    add(f"vanilla, T={TEMP}", [evaluate(s, "vanilla", seed, TEMP) for seed in SEEDS])
    add(f"TTS-MRO k={K} w={W}", [evaluate(s, "tts-mro", seed, TEMP, k=K, w=W) for seed in SEEDS])
    add(f"TTS-MRO k={K} w=2", [evaluate(s, "tts-mro", seed, TEMP, k=K, w=2) for seed in SEEDS])
    mro_nfe = {st: methods[f"TTS-MRO k={K} w={W}"][st][0]["nfe_per_example"] for st in s.steps}
    # baselines at >= TTS-MRO's DLM forward passes
    for st in s.steps:
        n = bon_n_for(mro_nfe[st], st)
        for select in ("vote", "reward"):
            res = [evaluate(s, "best-of-n", seed, TEMP, k=n, select=select, only=st) for seed in SEEDS]
            methods.setdefault(f"best-of-n ({select})", {})[st] = [r[st] for r in res]
    # TTS-CBR: with w=1 every candidate of a segment shares one forward, so any k costs the same;
    # it gets 16 candidates (4x TTS-MRO's)
    add("TTS-CBR k=16 w=1", [evaluate(s, "tts-cbr", seed, TEMP, k=16, w=1) for seed in SEEDS])
    metric = get_task(s.task).metrics[0]  # the solved rate: sudoku's "solved", countdown's "correct"
    table = {}
    for name, per_steps in methods.items():
        table[name] = {}
        for st, rows in per_steps.items():
            solved = [100 * r[metric] for r in rows]
            table[name][st] = {"mean": statistics.mean(solved), "std": statistics.stdev(solved) if len(solved) > 1 else 0.0,
                               "nfe": rows[0]["nfe_per_example"], "scorer": rows[0]["scorer_calls_per_example"],
                               "seeds": len(rows)}
    lines = ["| method | " + " | ".join(f"{st} steps ({s.length / st:g} tok/step): solved % | NFE" for st in s.steps)
             + " |", "|---|" + "---|---|" * len(s.steps)]
    for name, per_steps in table.items():
        cells = []
        for st in s.steps:
            c = per_steps[st]
            cells += [f"{c['mean']:.1f} ± {c['std']:.1f}", f"{c['nfe']:.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    mro = table[f"TTS-MRO k={K} w={W}"]
    van = table["vanilla, greedy"]
    few, many = s.steps
    claim = (f"speed claim (TTS-MRO at half the steps vs vanilla greedy at full steps): TTS-MRO@{few} "
             f"{mro[few]['mean']:.1f}% vs vanilla@{many} {van[many]['mean']:.1f}%: "
             + ("reached" if mro[few]["mean"] >= van[many]["mean"] else "NOT reached"))
    hw = hardware()
    lines += ["", claim, "",
              f"model {s.model}; {s.n} {s.described} (data seed 1234); seeds {list(SEEDS)} "
              f"(greedy vanilla is deterministic: one run); temperature {TEMP}; NFE = DLM forward passes per problem "
              f"(leave-one-out verification rows included); PPL scorer {s.task}-ar-tiny; {hw['processor']}, "
              f"torch {hw['torch']}"]
    (RESULTS / f"{s.stem}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{s.stem}.json").write_text(json.dumps({"table": table, "claim": claim, "hardware": hw, "date": now(),
                                                         "temperature": TEMP, "k": K, "w": W, "model": s.model,
                                                         "task": s.task, "task_options": s.task_options, "n": s.n},
                                                        indent=2))
    plot(s, table)
    print("\n".join(lines))
    return table


def plot(s: Setting, table: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, per_steps in table.items():
        xs = [per_steps[st]["nfe"] for st in s.steps]
        ys = [per_steps[st]["mean"] for st in s.steps]
        ax.errorbar(xs, ys, yerr=[per_steps[st]["std"] for st in s.steps], marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("DLM forward passes per problem (log)")
    ax.set_ylabel("solved %")
    ax.set_title(f"{s.model}: {s.steps[0]} steps (left of each line) and {s.steps[1]} steps")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{s.stem}.png", dpi=120)
    plt.close(fig)
