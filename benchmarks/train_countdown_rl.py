"""Training with MRO on the shipped tiny Countdown model: rejection sampling, RL with MRO's rewards,
the correctness-only RL baseline and RS then RL (docs/method.md sections 6 and 7), under the Sudoku
benchmark's budget rules.

Every arm is a recipe, ``configs/recipes/countdown/<verb>/<arm>.yaml`` (``mro train <verb>
--config <file>`` runs it alone). Each run starts from the shipped ``countdown-tiny`` (RS then RL:
from the RS model of the same seed) and trains with one thread for at most its recipe's
``max_minutes`` CPU-minutes (CPU time of the training process; 6, and 8 for the rejection-sampling
arm, whose collection comes before it, as in the Sudoku benchmark); the model kept is the one with
the best validation score (greedy solved % at 5 and 10 steps on 256 held-out generator problems,
never the test problems). Each kept model is then decoded greedily on the README's test set (1,000
held-out 3-number problems, numbers 1-100, targets up to 100, generator seed 1234) at
:data:`EVAL_STEPS` steps. Training seeds 0, 1, 2 (mean +- std). The RL settings are the Sudoku
benchmark's (16 problems x 8 rollouts per update, Adam 1e-4, group-mean baseline), with rollouts at
the step count where vanilla decoding loses most (``countdown_tokens_per_step.py``) and at T = 1.

Runs call the trainers in-process, two at a time, each in a process of its own (the RS-then-RL
runs after every other); a finished run (its ``eval.json``) is skipped and an interrupted one
resumes from its checkpoint:

    python benchmarks/train_countdown_rl.py                  # results.md gives the runs' wall time
    python benchmarks/train_countdown_rl.py --report-only
    python benchmarks/train_countdown_rl.py --report-only --ship    # -> src/mro/checkpoints/countdown-tiny-rs
    -> benchmarks/results/train_countdown_rl/{results.json,results.md,curves.png,runs/*}
"""

from __future__ import annotations

import json
from pathlib import Path

from mro.io import atomic_write_json, atomic_write_text, read_json

from common.recipes import REPO, recipe
from common.runs import (Bench, evaluate, finished, mean_std, parse_bench_args, provenance, read_log, run_jobs,
                         train_arm, val_records)
from common.ship import SELECT, card, install, selection_score

ROOT = Path(__file__).resolve().parent / "results" / "train_countdown_rl"
PROBLEMS = "n_numbers=3,max_number=100,max_target=100"
EVAL_STEPS = (20, 10, 5)  # 1, 2 and 4 tokens per step
VAL_STEPS = "5,10"  # the recipes' val_steps
ROLLOUT_STEPS = "5"  # the RL recipes' steps
MINUTES = 6  # the RL recipes' max_minutes
SEEDS = (0, 1, 2)
TEST = dict(task="countdown", n=1000, task_options=PROBLEMS, data_seed=1234)
#: the arms (recipes configs/recipes/countdown/<verb>/<arm>.yaml), in the order they run and are reported
ARMS = ("rl-correctness", "rl-mro", "rs-20", "rs-20-then-rl")
#: arms that start from another arm's kept model (of the same seed) instead of countdown-tiny
INIT = {"rs-20-then-rl": "rs-20"}
NAMES = {"rl-correctness": "RL, correctness only", "rl-mro": "RL, MRO rewards (R_tv + R_ppl + R_q) + SGRO",
         "rs-20": "RS: best-of-2 at 20 steps, target final (8 CPU-min)",
         "rs-20-then-rl": "RS, then RL (correctness only, lr 3e-5)"}


def test(bench: Bench, model: Path | str, out: Path) -> dict:
    """Solved % at each of EVAL_STEPS on the 1,000 test problems (greedy)."""
    return evaluate(model, out, "correct", steps=list(EVAL_STEPS), seed=0, **{**TEST, "n": bench.test_n or TEST["n"]})


def train_and_eval(bench: Bench, arm: str, seed: int) -> dict:
    """Train one arm/seed (resuming a partial run), then test its best model; kept in eval.json."""
    return train_arm(bench, "countdown", arm, seed, INIT.get(arm), test)


def finished_runs(bench: Bench) -> list[dict]:
    """The records of every finished run, seed by seed in the order of ARMS."""
    return [r for s in SEEDS for a in ARMS if (r := finished(bench.run_dir(f"{a}-s{s}")))]


def vanilla(bench: Bench) -> dict:
    path = bench.root / "vanilla.json"
    if not path.is_file():
        atomic_write_json(path, test(bench, "countdown-tiny", bench.run_dir("vanilla-eval")))
    return read_json(path)


def report(bench: Bench, results: list[dict], report_only: bool) -> None:
    hw, date = provenance(bench.root / "results.json", report_only)
    base = vanilla(bench)
    lines = ["# Training with MRO on countdown-tiny", "",
             f"Solved % on 1,000 held-out 3-number test problems (numbers 1-100, targets up to 100, generator seed "
             f"1234), greedy; training seeds {list(SEEDS)} (mean ± std). Each run: one thread, at most {MINUTES} "
             f"CPU-minutes (RS: 8, after its collection), RL rollouts at {ROLLOUT_STEPS} steps and T = 1, "
             f"best checkpoint by validation (greedy at "
             f"{VAL_STEPS} steps, 256 held-out generator problems). Made by "
             f"`python benchmarks/train_countdown_rl.py` ({date}).", "",
             "| method | " + " | ".join(f"{s} steps" for s in EVAL_STEPS) + " | CPU-min | updates | best update |",
             "|---|" + "---|" * (len(EVAL_STEPS) + 3),
             "| vanilla (countdown-tiny) | " + " | ".join(f"{base[str(s)]:.1f}" for s in EVAL_STEPS) + " | - | - | - |"]
    for arm, name in NAMES.items():
        rows = [r for r in results if r["arm"] == arm]
        if rows:
            lines.append(f"| {name} ({len(rows)} seeds) | " + " | ".join(
                mean_std([r["solved"][str(s)] for r in rows]) for s in EVAL_STEPS) +
                f" | {mean_std([r['cpu_min'] for r in rows])} | {mean_std([r['updates'] for r in rows])} | "
                f"{', '.join(str(r['best_update']) for r in rows)} |")
    lines += ["", "Best update 0 = no validation beat the starting model, so the run kept it. Wall time of all runs "
              f"(one at a time or two side by side, evaluation included): {sum(r['wall_s'] for r in results) / 60:.0f} "
              "minutes."]
    lines += equal_updates(bench, results)
    lines += ["", "## Commands", ""]
    lines += [f"- `{r['arm']}` seed {r['seed']}: `{r['command'].replace(str(REPO) + '/', '')}`" for r in results]
    lines += ["", f"Hardware: {json.dumps(hw)}"]
    atomic_write_text(bench.root / "results.md", "\n".join(lines) + "\n")
    atomic_write_json(bench.root / "results.json", {"vanilla": base, "runs": results, "hardware": hw, "date": date})
    plot(bench, results)


def equal_updates(bench: Bench, results: list[dict]) -> list[str]:
    """The RL arms at the same updates: validation (mean over seeds) and their rollouts' rewards."""
    lines = ["", "## RL at equal updates", "",
             "Validation solved % (mean over the seeds that got there) and the training rollouts' mean intra "
             "score and correctness (R_q) over a window of updates:", "",
             "| arm | update | seeds | val 5 steps | val 10 steps | rollouts' window | intra | correct |",
             "|---|---|---|---|---|---|---|---|"]
    for arm in ("rl-correctness", "rl-mro"):
        logs = [read_log(bench.run_dir(f"{r['arm']}-s{r['seed']}")) for r in results if r["arm"] == arm]
        for update, window in ((0, (1, 20)), (100, (81, 100)), (200, (181, 200))):
            vals = [v for log in logs for v in log if v["kind"] == "val" and v["update"] == update]
            train_rows = [t for log in logs for t in log if t["kind"] == "train" and window[0] <= t["update"] <= window[1]]
            if not vals or not train_rows:
                continue
            lines.append(f"| {arm} | {update} | {len(vals)} | "
                         + " | ".join(f"{100 * sum(v['solved'][st] for v in vals) / len(vals):.1f}" for st in ("5", "10"))
                         + f" | {window[0]}-{window[1]} | {mean_of(train_rows, 'intra')} | {mean_of(train_rows, 'q')} |")
    return lines


def mean_of(records: list[dict], key: str) -> str:
    """Mean of ``key`` over the records, or '-' where the run did not compute it (intra off)."""
    values = [r[key] for r in records if key in r]
    return f"{sum(values) / len(values):.3f}" if values else "-"


def plot(bench: Bench, results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = VAL_STEPS.split(",")
    fig, axes = plt.subplots(1, len(steps), figsize=(6 * len(steps), 4.5), sharey=True)
    colors = {"rl-correctness": "tab:blue", "rl-mro": "tab:orange", "rs-20": "tab:green", "rs-20-then-rl": "tab:red"}
    for ax, st in zip(axes, steps):
        for r in results:
            vals = val_records(bench.run_dir(f"{r['arm']}-s{r['seed']}"))
            ax.plot([x["cpu_min"] for x in vals], [100 * x["solved"][st] for x in vals], color=colors[r["arm"]],
                    alpha=0.85, lw=1.2, label=r["arm"] if r["seed"] == 0 else None)
        ax.set_title(f"validation solved % at {st} steps (greedy)")
        ax.set_xlabel("CPU-minutes of training")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("solved %")
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(bench.root / "curves.png", dpi=110)
    plt.close(fig)


def ship(bench: Bench, results: list[dict]) -> dict:
    """Copy the RS arm's best seed into the package as ``countdown-tiny-rs``: every seed's kept model
    is scored on one common validation set (SELECT: 1,024 held-out generator problems, greedy at 5
    and 10 steps; never the test problems), as the Sudoku benchmark chooses its shipped models."""
    rows = [r for r in results if r["arm"] == "rs-20" and r["best_update"] > 0]
    if not rows:
        return {}
    for r in rows:
        r["selection"] = selection_score(bench.run_dir(f"{r['arm']}-s{r['seed']}") / "best", "countdown", (5, 10),
                                         PROBLEMS)
    best = max(rows, key=lambda r: r["selection"])
    run = bench.run_dir(f"{best['arm']}-s{best['seed']}")
    chosen = {"countdown-tiny-rs": {
        "arm": best["arm"], "seed": best["seed"],
        "recipe": best.get("recipe") or str(recipe("countdown", best["arm"]).relative_to(REPO)),
        "command": best["command"].replace(str(REPO) + "/", ""),
        "validation": best["best_val"], "selection": round(100 * best["selection"], 2), "selection_set": SELECT,
        "test": best["solved"], "candidates": {f"{r['arm']}-s{r['seed']}": round(100 * r["selection"], 2) for r in rows}}}
    install(run / "best", "countdown-tiny-rs", run,
            card("countdown-tiny-rs", "`countdown-tiny` after rejection sampling (docs/method.md section 6)",
                 chosen["countdown-tiny-rs"], "benchmarks/train_countdown_rl.py", "1,000 test problems"))
    atomic_write_json(bench.root / "shipped.json", chosen)
    return chosen


def main() -> None:
    args, bench = parse_bench_args(__doc__, ROOT, ARMS, "copy the best RS model (by a common validation set) into "
                                                        "the package")
    jobs = [(arm, seed) for seed in SEEDS for arm in ARMS]
    if not args.report_only:
        vanilla(bench)
        todo = [j for j in jobs if j[0] in (args.only or ARMS)]
        for phase in ([j for j in todo if j[0] not in INIT], [j for j in todo if j[0] in INIT]):
            # second phase: arms that start from a first-phase model
            run_jobs(train_and_eval, [(bench, *j) for j in phase], args.jobs)
    results = finished_runs(bench)
    report(bench, results, args.report_only)
    print((bench.root / "results.md").read_text())
    if args.ship:
        print(json.dumps(ship(bench, results), indent=2))


if __name__ == "__main__":
    main()
