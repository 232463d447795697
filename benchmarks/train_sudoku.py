"""Training with MRO on the shipped tiny Sudoku model: RS and RL against the correctness-only
baseline, and the RL ablation (docs/method.md sections 6 and 7).

Every arm is a recipe, ``configs/recipes/sudoku/<verb>/<arm>.yaml`` (``mro train <verb> --config
<file>`` runs it alone), started from the shipped ``sudoku-tiny`` or from another arm's kept
model of the same seed, with one thread for at most its CPU-minute budget (``max_minutes``: CPU
time of the training process, which is what a run costs on a shared machine); the model kept is
the one with the best validation score (greedy solved % at 2, 3 and 4 steps on held-out generator
puzzles, never the test puzzles). Each kept model is then decoded greedily on the README's test
set (500 held-out puzzles with 10-12 blanks, generator seed 1234) at 12, 4, 3 and 2 steps. Main
rows use training seeds 0, 1, 2 (mean +- std); the ablation one seed.

Runs call the trainers in-process (``train_rs(cfg)``, ``train_rl(cfg)``), two at a time, each in
a process of its own (``--jobs``); a finished run (its ``eval.json``) is skipped, an interrupted
one resumes from its checkpoint, so rerunning the script finishes what is missing:

    python benchmarks/train_sudoku.py                  # everything (about 3 hours on 2 idle cores)
    python benchmarks/train_sudoku.py --only rl-mro    # one arm
    python benchmarks/train_sudoku.py --report-only    # the tables and curves from the committed runs
    -> benchmarks/results/train_sudoku/{results.json,results.md,curves.png,runs/*}
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from mro.io import atomic_write_json, atomic_write_text, read_json

from common.recipes import REPO, recipe
from common.runs import (Bench, evaluate, finished, mean_std, parse_bench_args, provenance, run_jobs, train_arm,
                         val_records)
from common.ship import SELECT, card, install, selection_score

ROOT = Path(__file__).resolve().parent / "results" / "train_sudoku"
EVAL_STEPS = (12, 4, 3, 2)
TEST = dict(task="sudoku", n=500, task_options="min_blanks=10,max_blanks=12", data_seed=1234)
MAIN, ONE = (0, 1, 2), (0,)
#: arm -> (training seeds, the arm whose kept model of the same seed it starts from); the rest of
#: each arm is its recipe, configs/recipes/sudoku/<verb>/<arm>.yaml
ARMS = {
    "rs": (MAIN, None), "rs-12": (MAIN, None), "rl-correctness": (MAIN, None), "rl-mro": (MAIN, None),
    "rs-then-rl": (MAIN, "rs"), "rs-then-rl-q": (MAIN, "rs"), "rs-12-then-rl-q": (MAIN, "rs-12"),
    "rs-12c": (MAIN, None), "rs-12c-then-rl": (MAIN, "rs-12c"), "rs-12c-then-rl-t1": (MAIN, "rs-12c"),
    # ablation of rl-mro (seed 0): each changes one thing
    "abl-no-tv": (ONE, None), "abl-no-ppl": (ONE, None), "abl-no-sgro": (ONE, None), "abl-all-groups": (ONE, None),
    "abl-baseline-none": (ONE, None),
}


def train_and_eval(bench: Bench, arm: str, seed: int) -> dict:
    """Train one arm/seed (resuming a partial run), then test its best model; kept in eval.json."""
    return train_arm(bench, "sudoku", arm, seed, ARMS[arm][1], test)


def test(bench: Bench, model: Path, out: Path, **search) -> dict:
    """Solved % at each of EVAL_STEPS on the README's 500 test puzzles (greedy unless ``search``)."""
    return evaluate(model, out, "solved", steps=list(EVAL_STEPS), seed=search.pop("seed", 0),
                    **{**TEST, "n": bench.test_n or TEST["n"]}, **search)


def finished_runs(bench: Bench) -> list[dict]:
    """The records of every finished run, in the order of ARMS and seeds."""
    return [r for a, (seeds, _) in ARMS.items() for s in seeds if (r := finished(bench.run_dir(f"{a}-s{s}")))]


def tts_rows(bench: Bench) -> dict:
    """TTS-MRO (k=4, w=1, T=0.5) on the starting model and on each RL-MRO model; cached."""
    path = bench.root / "tts.json"
    cached = read_json(path) if path.is_file() else {}
    for base, seed in [("vanilla", s) for s in MAIN] + [("rl-mro", s) for s in MAIN]:
        key = f"{base}-s{seed}"
        model = Path("sudoku-tiny") if base == "vanilla" else bench.run_dir(f"rl-mro-s{seed}") / "best"
        if key in cached or (base == "rl-mro" and not (model / "config.json").is_file()):
            continue
        cached[key] = test(bench, model, bench.run_dir(f"tts-{key}"), decode="tts-mro", seed=seed, k=4, w=1,
                           temperature=0.5)
        atomic_write_json(path, cached)
    return cached


def report(bench: Bench, results: list[dict], tts: dict, report_only: bool) -> None:
    hw, date = provenance(bench.root / "results.json", report_only)
    by_arm: dict[str, list[dict]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(r)
    base = read_json(bench.root / "vanilla.json")
    lines = ["# Training with MRO on sudoku-tiny", "",
             f"Solved % on 500 held-out test puzzles (10-12 blanks, generator seed 1234), greedy decoding unless "
             f"noted; training seeds 0, 1, 2 (mean ± std) for the main rows. Each run: one thread, at most its "
             f"CPU-minute budget, best checkpoint by validation. Made by `python benchmarks/train_sudoku.py` "
             f"({date}).", "",
             "| method | 12 steps | 4 steps | 3 steps | 2 steps | CPU-min | updates |", "|---|---|---|---|---|---|---|",
             "| vanilla (sudoku-tiny) | " + " | ".join(f"{base[str(s)]:.1f}" for s in EVAL_STEPS) + " | - | - |"]
    tts_base = [v for k, v in tts.items() if k.startswith("vanilla")]
    if tts_base:
        lines.append("| TTS-MRO k=4 w=1 T=0.5 (sudoku-tiny) | " + " | ".join(
            mean_std([t[str(s)] for t in tts_base]) for s in EVAL_STEPS) + " | - | - |")
    names = {"rs": "RS (TTS-MRO k=4 at 3 steps, target final)",
             "rs-12": "RS (best-of-2 at 12 steps, target final)", "rl-correctness": "RL, correctness only",
             "rl-mro": "RL, MRO rewards + SGRO", "rs-then-rl": "RS, then RL (correctness + potential, group credit)",
             "rs-then-rl-q": "RS, then RL (correctness only, 2 and 3 steps, lr 5e-5)",
             "rs-12-then-rl-q": "RS (12 steps), then RL (correctness only, 2 and 3 steps, lr 2e-5, 32 puzzles)",
             "rs-12c": "RS (12 steps), cosine lr, 1,024 validation puzzles",
             "rs-12c-then-rl": "RS (12 steps, cosine lr), then RL (3 steps, lr 2e-5 cosine, 32 puzzles), 1,024 val puzzles",
             "rs-12c-then-rl-t1": "the same RL at T = 1 and lr 5e-6"}
    for arm in names:
        rows = by_arm.get(arm, [])
        if rows:
            seeds = f"{len(rows)} seeds" if len(rows) > 1 else f"seed {rows[0]['seed']}"
            lines.append(f"| {names[arm]} ({seeds}) | " + " | ".join(
                mean_std([r["solved"][str(s)] for r in rows]) for s in EVAL_STEPS) +
                f" | {mean_std([r['cpu_min'] for r in rows])} | {mean_std([r['updates'] for r in rows])} |")
    tts_rl = [v for k, v in tts.items() if k.startswith("rl-mro")]
    if tts_rl:
        lines.append(f"| RL, MRO + TTS-MRO k=4 w=1 T=0.5 ({len(tts_rl)} seeds) | " + " | ".join(
            mean_std([t[str(s)] for t in tts_rl]) for s in EVAL_STEPS) + " | - | - |")
    lines += equal_updates(bench, by_arm)
    lines += ["", "## RL ablation (seed 0, one change each from `rl-mro`)", "",
              "| arm | 12 | 4 | 3 | 2 | updates | rollouts/s (median) |", "|---|---|---|---|---|---|---|"]
    for arm in ["rl-mro"] + [a for a in ARMS if a.startswith("abl-")]:
        rows = [r for r in by_arm.get(arm, []) if r["seed"] == 0]
        if rows:
            r = rows[0]
            lines.append(f"| {arm} | " + " | ".join(f"{r['solved'][str(s)]:.1f}" for s in EVAL_STEPS) +
                         f" | {r['updates']} | {r.get('rollouts_per_s', '-')} |")
    lines += ["", "## Commands", ""] + [f"- `{r['arm']}` seed {r['seed']}: `{r['command'].replace(str(REPO) + '/', '')}`"
                                        for r in results]
    lines += ["", f"Hardware: {json.dumps(hw)}"]
    atomic_write_text(bench.root / "results.md", "\n".join(lines) + "\n")
    atomic_write_json(bench.root / "results.json", {"vanilla": base, "tts": tts, "runs": results, "hardware": hw,
                                                    "date": date})
    plot(bench, by_arm)


def equal_updates(bench: Bench, by_arm: dict) -> list[str]:
    """Validation solved % of the RL arms at the same number of updates (the most every run reached)."""
    arms = [a for a in ("rl-correctness", "rl-mro") if by_arm.get(a)]
    if len(arms) < 2:
        return []
    vals = {(a, r["seed"]): val_records(bench.run_dir(f"{a}-s{r['seed']}")) for a in arms for r in by_arm[a]}
    common = min(max(v["update"] for v in records) for records in vals.values())
    lines = ["", f"Validation (256 held-out generator puzzles) at the same number of updates, {common} (mean over "
             "seeds): the same rollouts, whatever each update cost.", "",
             "| arm | 2 steps | 3 steps | 4 steps | CPU-min to get there |", "|---|---|---|---|---|"]
    for a in arms:
        at = [max((v for v in vals[a, r["seed"]] if v["update"] <= common), key=lambda v: v["update"])
              for r in by_arm[a]]
        lines.append(f"| {a} | " + " | ".join(mean_std([100 * v["solved"][k] for v in at]) for k in ("2", "3", "4"))
                     + f" | {mean_std([v['cpu_min'] for v in at])} |")
    return lines


def plot(bench: Bench, by_arm: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in ARMS if a in by_arm]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, steps in zip(axes, ("3", "2")):
        for i, arm in enumerate(arms):
            for j, r in enumerate(sorted(by_arm[arm], key=lambda r: r["seed"])):
                vals = val_records(bench.run_dir(f"{arm}-s{r['seed']}"))
                ax.plot([x["cpu_min"] for x in vals], [100 * x["solved"][steps] for x in vals],
                        color=colors[i % len(colors)], alpha=0.85, lw=1.2, label=arm if j == 0 else None)
        ax.set_title(f"validation solved % at {steps} steps (greedy)")
        ax.set_xlabel("CPU-minutes of training")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("solved %")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(bench.root / "curves.png", dpi=110)
    plt.close(fig)


#: shipped model -> the arms it is chosen among, and what its card says it is
SHIPPED = {
    "sudoku-tiny-rs": (("rs", "rs-12", "rs-12c"), "`sudoku-tiny` after rejection sampling (docs/method.md section 6)"),
    "sudoku-tiny-rl": (("rl-correctness", "rl-mro", "rs-then-rl", "rs-then-rl-q", "rs-12-then-rl-q", "rs-12c-then-rl",
                        "rs-12c-then-rl-t1"), "`sudoku-tiny` after RL (docs/method.md section 7), RS first where the "
                                              "recipe says so"),
}


def ship(bench: Bench, results: list[dict]) -> dict:
    """Copy the kept models into the package: ``sudoku-tiny-rs`` (the RS recipe) and ``sudoku-tiny-rl``
    (the RL recipe) with the best mean score over their seeds on the common validation set
    (``common.ship.SELECT``), then that recipe's best seed; never chosen on the test puzzles."""
    chosen = {}
    for name, (arms, what) in SHIPPED.items():
        # a run whose validation never beat its starting model kept that model: it shows nothing trained
        rows = [r for r in results if r["arm"] in arms and r["best_update"] > 0
                and (bench.run_dir(f"{r['arm']}-s{r['seed']}") / "best" / "config.json").is_file()]
        if not rows:
            continue
        for r in rows:
            r["selection"] = selection_score(bench.run_dir(f"{r['arm']}-s{r['seed']}") / "best", "sudoku", (2, 3, 4),
                                             TEST["task_options"])
        by_arm = {a: [r for r in rows if r["arm"] == a] for a in arms}
        arm = max((a for a in arms if by_arm[a]), key=lambda a: statistics.mean(r["selection"] for r in by_arm[a]))
        best = max(by_arm[arm], key=lambda r: r["selection"])
        run = bench.run_dir(f"{arm}-s{best['seed']}")
        chosen[name] = {"arm": arm, "seed": best["seed"],
                        "recipe": best.get("recipe") or str(recipe("sudoku", arm).relative_to(REPO)),
                        "command": best["command"].replace(str(REPO) + "/", ""), "validation": best["best_val"],
                        "selection": round(100 * best["selection"], 2), "selection_set": SELECT, "test": best["solved"],
                        "candidates": {f"{r['arm']}-s{r['seed']}": round(100 * r["selection"], 2) for r in rows}}
        install(run / "best", name, run, card(name, what, chosen[name], "benchmarks/train_sudoku.py",
                                                                 "500 test puzzles with 10-12 blanks"))
    atomic_write_json(bench.root / "shipped.json", chosen)
    return chosen


def main() -> None:
    args, bench = parse_bench_args(
        __doc__, ROOT, ARMS, "copy the RS and RL models with the best validation scores into src/mro/checkpoints",
        lambda p: p.add_argument("--reeval", action="store_true", help="decode every finished run's kept model (and "
                                 "the starting model) again with the current code"))
    if args.reeval:
        for path in (bench.root / "vanilla.json", bench.root / "tts.json"):
            path.unlink(missing_ok=True)
        for a, (seeds, _) in ARMS.items():
            for seed in seeds:
                out = bench.run_dir(f"{a}-s{seed}")
                if result := finished(out):
                    result["solved"] = test(bench, out / "best", out / "eval")
                    atomic_write_json(out / "eval.json", result)
    if not (bench.root / "vanilla.json").is_file():
        atomic_write_json(bench.root / "vanilla.json", test(bench, Path("sudoku-tiny"), bench.run_dir("vanilla-eval")))
    arms = args.only or list(ARMS)
    if not args.report_only:
        # arms that start from another arm's model run after it (second phase)
        for phase in ([a for a in arms if not ARMS[a][1]], [a for a in arms if ARMS[a][1]]):
            run_jobs(train_and_eval, [(bench, a, s) for a in phase for s in ARMS[a][0]], args.jobs)
    results = finished_runs(bench)
    tts = tts_rows(bench) if not args.report_only else (
        read_json(bench.root / "tts.json") if (bench.root / "tts.json").is_file() else {})
    report(bench, results, tts, args.report_only)
    if args.ship:
        print(json.dumps(ship(bench, results), indent=2))
    print((bench.root / "results.md").read_text())


if __name__ == "__main__":
    main()
