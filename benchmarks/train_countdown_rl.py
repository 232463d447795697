"""Training with MRO on the shipped tiny Countdown model: rejection sampling, RL with MRO's rewards,
the correctness-only RL baseline and RS then RL (docs/method.md sections 6 and 7), under the Sudoku
benchmark's budget rules.

Each run starts from the shipped ``countdown-tiny`` (RS then RL: from the RS model of the same
seed) and trains with one thread for at most :data:`MINUTES` CPU-minutes (CPU time of the
training process; 8 for the rejection-sampling arm, whose collection comes before it, as in the
Sudoku benchmark); the model kept is the one with the best validation score (greedy solved % at
the :data:`VAL_STEPS` step counts on 256 held-out generator problems, never the test problems).
Each kept model is then decoded greedily on the README's test set (1,000 held-out 3-number
problems, numbers 1-100, targets up to 100, generator seed 1234) at :data:`EVAL_STEPS` steps.
Training seeds 0, 1, 2 (mean +- std). The RL settings are the Sudoku benchmark's (16 problems x 8
rollouts per update, Adam 1e-4, group-mean baseline), with rollouts at the step count where
vanilla decoding loses most (``countdown_tokens_per_step.py``) and at T = 1.

Runs are independent jobs, two at a time (the RS-then-RL runs after every other); a finished run
(its ``eval.json``) is skipped and an interrupted one resumes from its checkpoint:

    python benchmarks/train_countdown_rl.py                  # results.md gives the runs' wall time
    python benchmarks/train_countdown_rl.py --report-only
    python benchmarks/train_countdown_rl.py --report-only --ship    # -> src/mro/checkpoints/countdown-tiny-rs
    -> benchmarks/results/train_countdown_rl/{results.json,results.md,curves.png,runs/*}
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from train_sudoku import REPO, SELECT, install, mean_std, selection_score, train_stats

ROOT = Path(__file__).resolve().parent / "results" / "train_countdown_rl"
RUNS = ROOT / "runs"
PROBLEMS = "n_numbers=3,max_number=100,max_target=100"
EVAL_STEPS = (20, 10, 5)  # 1, 2 and 4 tokens per step
VAL_STEPS = "5,10"
ROLLOUT_STEPS = "5"
MINUTES = 6
SEEDS = (0, 1, 2)
TEST = dict(task="countdown", n=1000, task_options=PROBLEMS, data_seed=1234)
COMMON = ["--task", "countdown", "--model", "countdown-tiny", "--threads", "1", "--progress", "false",
          "--task-options", PROBLEMS, "--val-n", "256", "--val-steps", VAL_STEPS]
RL = ["--updates", "100000", "--prompts", "16", "--rollouts", "8", "--steps", ROLLOUT_STEPS, "--temperature", "1",
      "--lr", "1e-4", "--val-every", "20", "--max-minutes", str(MINUTES)]
ARMS = {
    "rl-correctness": ("rl", RL + ["--rewards", "q", "--format-weight", "0", "--shaping", "false", "--credit", "to-go"]),
    "rl-mro": ("rl", RL + ["--rewards", "tv=0.1,ppl=0.1,q", "--format-weight", "0", "--shaping", "true",
                           "--credit", "group", "--w", "1", "--groups", "2", "--proposal", "uniform"]),
    # rejection sampling from the model's own slow decodes, the recipe that worked best on Sudoku:
    # best-of-2 (the greedy decode and one sample at T = 0.5, majority vote, ties to the greedy one) at
    # one token per step on 8,000 training problems, keep the verified ones, fine-tune towards the final
    # answer from every state (cosine lr); the collection's CPU time is not in the budget
    "rs-20": ("rs", ["--problems", "8000", "--collect-batch", "500", "--collect", "best-of-n", "--collect-steps",
                     "20", "--collect-temperature", "0.5", "--k", "2", "--select", "vote", "--rewards", "q",
                     "--target", "final", "--lr", "3e-4", "--batch-size", "64", "--updates", "2000",
                     "--lr-schedule", "cosine", "--val-every", "100", "--max-minutes", "8"]),
    # RL after RS (from the RS model of the same seed): correctness only, a lower learning rate
    "rs-20-then-rl": ("rl", RL + ["--rewards", "q", "--format-weight", "0", "--shaping", "false", "--credit", "to-go",
                                  "--lr", "3e-5"]),
}
#: arms that start from another arm's kept model (of the same seed) instead of countdown-tiny
INIT = {"rs-20-then-rl": "rs-20"}
NAMES = {"rl-correctness": "RL, correctness only", "rl-mro": "RL, MRO rewards (R_tv + R_ppl + R_q) + SGRO",
         "rs-20": "RS: best-of-2 at 20 steps, target final (8 CPU-min)",
         "rs-20-then-rl": "RS, then RL (correctness only, lr 3e-5)"}


def run_dir(arm: str, seed: int) -> Path:
    return RUNS / f"{arm}-s{seed}"


def evaluate(model: str, out: Path) -> dict:
    """Solved % at each of EVAL_STEPS on the 1,000 test problems (greedy)."""
    from mro.eval.harness import EvalConfig, run_eval

    shutil.rmtree(out, ignore_errors=True)
    s = run_eval(EvalConfig(model=model, steps=list(EVAL_STEPS), seed=0, out=str(out), batch_size=250,
                            progress=False, **TEST))
    return {str(r["steps"]): round(100 * r["correct"], 2) for r in s["results"]}


def train_and_eval(arm: str, seed: int) -> dict:
    out = run_dir(arm, seed)
    done = out / "eval.json"
    if done.is_file():
        return json.loads(done.read_text())
    verb, flags = ARMS[arm]
    cmd = [sys.executable, "-m", "mro", "train", verb, *COMMON, *flags, "--seed", str(seed), "--out", str(out)]
    if arm in INIT:  # the later --model wins
        cmd += ["--model", str(run_dir(INIT[arm], seed) / "best")]
    if (out / "run.json").is_file():
        cmd.append("--resume")
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    result = {"arm": arm, "seed": seed, "command": " ".join(["mro", *cmd[3:]]), "wall_s": round(time.time() - t0, 1)}
    result["solved"] = evaluate(str(out / "best"), out / "eval")
    result.update(train_stats(out))
    done.write_text(json.dumps(result, indent=2))
    return result


def run_safely(job: tuple[str, int]) -> dict | None:
    try:
        return train_and_eval(*job)
    except Exception as e:  # noqa: BLE001 - a benchmark job, reported and skipped
        print(f"{job[0]} seed {job[1]} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def vanilla() -> dict:
    path = ROOT / "vanilla.json"
    if not path.is_file():
        path.write_text(json.dumps(evaluate("countdown-tiny", RUNS / "vanilla-eval"), indent=2))
    return json.loads(path.read_text())


def report(results: list[dict]) -> None:
    from mro.eval.records import hardware, now

    base = vanilla()
    lines = ["# Training with MRO on countdown-tiny", "",
             f"Solved % on 1,000 held-out 3-number test problems (numbers 1-100, targets up to 100, generator seed "
             f"1234), greedy; training seeds {list(SEEDS)} (mean ± std). Each run: one thread, at most {MINUTES} "
             f"CPU-minutes (RS: 8, after its collection), RL rollouts at {ROLLOUT_STEPS} steps and T = 1, "
             f"best checkpoint by validation (greedy at "
             f"{VAL_STEPS} steps, 256 held-out generator problems). Made by "
             f"`python benchmarks/train_countdown_rl.py` ({now()}).", "",
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
    lines += equal_updates(results)
    lines += ["", "## Commands", ""]
    lines += [f"- `{r['arm']}` seed {r['seed']}: `{r['command'].replace(REPO, '')}`" for r in results]
    lines += ["", f"Hardware: {json.dumps(hardware())}"]
    (ROOT / "results.md").write_text("\n".join(lines) + "\n")
    (ROOT / "results.json").write_text(json.dumps({"vanilla": base, "runs": results, "hardware": hardware(),
                                                   "date": now()}, indent=2))
    plot(results)


def equal_updates(results: list[dict]) -> list[str]:
    """The RL arms at the same updates: validation (mean over seeds) and their rollouts' rewards."""
    lines = ["", "## RL at equal updates", "",
             "Validation solved % (mean over the seeds that got there) and the training rollouts' mean intra "
             "score and correctness (R_q) over a window of updates:", "",
             "| arm | update | seeds | val 5 steps | val 10 steps | rollouts' window | intra | correct |",
             "|---|---|---|---|---|---|---|---|"]
    for arm in ("rl-correctness", "rl-mro"):
        logs = [[json.loads(x) for x in (run_dir(r["arm"], r["seed"]) / "log.jsonl").read_text().splitlines()]
                for r in results if r["arm"] == arm]
        for update, window in ((0, (1, 20)), (100, (81, 100)), (200, (181, 200))):
            vals = [v for log in logs for v in log if v["kind"] == "val" and v["update"] == update]
            train = [t for log in logs for t in log if t["kind"] == "train" and window[0] <= t["update"] <= window[1]]
            if not vals or not train:
                continue
            lines.append(f"| {arm} | {update} | {len(vals)} | "
                         + " | ".join(f"{100 * sum(v['solved'][st] for v in vals) / len(vals):.1f}" for st in ("5", "10"))
                         + f" | {window[0]}-{window[1]} | {mean_of(train, 'intra')} | {mean_of(train, 'q')} |")
    return lines


def mean_of(records: list[dict], key: str) -> str:
    """Mean of ``key`` over the records, or '-' where the run did not compute it (intra off)."""
    values = [r[key] for r in records if key in r]
    return f"{sum(values) / len(values):.3f}" if values else "-"


def plot(results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = VAL_STEPS.split(",")
    fig, axes = plt.subplots(1, len(steps), figsize=(6 * len(steps), 4.5), sharey=True)
    colors = {"rl-correctness": "tab:blue", "rl-mro": "tab:orange", "rs-20": "tab:green", "rs-20-then-rl": "tab:red"}
    for ax, st in zip(axes, steps):
        for r in results:
            log = [json.loads(x) for x in (run_dir(r["arm"], r["seed"]) / "log.jsonl").read_text().splitlines()]
            vals = [x for x in log if x["kind"] == "val"]
            ax.plot([x["cpu_min"] for x in vals], [100 * x["solved"][st] for x in vals], color=colors[r["arm"]],
                    alpha=0.85, lw=1.2, label=r["arm"] if r["seed"] == 0 else None)
        ax.set_title(f"validation solved % at {st} steps (greedy)")
        ax.set_xlabel("CPU-minutes of training")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("solved %")
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(ROOT / "curves.png", dpi=110)
    plt.close(fig)


def ship(results: list[dict]) -> dict:
    """Copy the RS arm's best seed into the package as ``countdown-tiny-rs``: every seed's kept model
    is scored on one common validation set (SELECT: 1,024 held-out generator problems, greedy at 5
    and 10 steps; never the test problems), as the Sudoku benchmark chooses its shipped models."""
    rows = [r for r in results if r["arm"] == "rs-20" and r["best_update"] > 0]
    if not rows:
        return {}
    for r in rows:
        r["selection"] = selection_score(run_dir(r["arm"], r["seed"]) / "best", "countdown", (5, 10),
                                         n_numbers=3, max_number=100, max_target=100)
    best = max(rows, key=lambda r: r["selection"])
    install(run_dir(best["arm"], best["seed"]), "countdown-tiny-rs")
    chosen = {"countdown-tiny-rs": {
        "arm": best["arm"], "seed": best["seed"], "command": best["command"].replace(REPO, ""),
        "validation": best["best_val"], "selection": round(100 * best["selection"], 2), "selection_set": SELECT,
        "test": best["solved"], "candidates": {f"{r['arm']}-s{r['seed']}": round(100 * r["selection"], 2) for r in rows}}}
    (ROOT / "shipped.json").write_text(json.dumps(chosen, indent=2))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (one thread each)")
    parser.add_argument("--report-only", action="store_true", help="rebuild the table from finished runs")
    parser.add_argument("--ship", action="store_true",
                        help="copy the best RS model (by a common validation set) into the package")
    args = parser.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    jobs = [(arm, seed) for seed in SEEDS for arm in ARMS]
    if not args.report_only:
        vanilla()
        for phase in ([j for j in jobs if j[0] not in INIT], [j for j in jobs if j[0] in INIT]):
            with ThreadPoolExecutor(args.jobs) as pool:  # second phase: arms that start from a first-phase model
                list(pool.map(run_safely, phase))
    results = [json.loads((run_dir(a, s) / "eval.json").read_text()) for a, s in jobs
               if (run_dir(a, s) / "eval.json").is_file()]
    report(results)
    print((ROOT / "results.md").read_text())
    if args.ship:
        print(json.dumps(ship(results), indent=2))


if __name__ == "__main__":
    main()
