"""Training with MRO on the shipped tiny Sudoku model: RS and RL against the correctness-only
baseline, and the RL ablation (docs/method.md sections 6 and 7).

Every arm starts from the shipped ``sudoku-tiny`` and trains with one thread for at most its
CPU-minute budget (``--max-minutes``: CPU time of the training process, which is what a run costs
on a shared machine); the model kept is the one with the best validation score (greedy solved %
at 2, 3 and 4 steps on 256 held-out generator puzzles, never the test puzzles). Each kept model
is then decoded greedily on the README's test set (500 held-out puzzles with 10-12 blanks,
generator seed 1234) at 12, 4, 3 and 2 steps. Main rows use training seeds 0, 1, 2 (mean +- std);
the ablation one seed.

Runs are independent jobs, two at a time (``--jobs``); a finished run (its ``eval.json``) is
skipped, an interrupted one resumes from its checkpoint, so rerunning the script finishes what is
missing:

    python benchmarks/train_sudoku.py                  # everything (about 3 hours on 2 idle cores)
    python benchmarks/train_sudoku.py --only rl-mro    # one arm
    -> benchmarks/results/train_sudoku/{results.json,results.md,curves.png,runs/*}
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "results" / "train_sudoku"
REPO = str(Path(__file__).resolve().parents[1]) + "/"  # stripped from the commands the reports print
RUNS = ROOT / "runs"
EVAL_STEPS = (12, 4, 3, 2)
TEST = dict(task="sudoku", n=500, task_options="min_blanks=10,max_blanks=12", data_seed=1234)
COMMON = ["--task", "sudoku", "--model", "sudoku-tiny", "--threads", "1", "--progress", "false",
          "--task-options", "min_blanks=10,max_blanks=12", "--val-n", "256", "--val-steps", "2,3,4",
          "--updates", "100000"]
#: RL shared by every RL arm: 16 problems x 8 rollouts at 3 steps, T = 2, Adam 1e-4, group-mean baseline
RL = ["--prompts", "16", "--rollouts", "8", "--steps", "3", "--temperature", "2", "--lr", "1e-4",
      "--val-every", "40"]
CORRECTNESS = ["--rewards", "q", "--format-weight", "0", "--shaping", "false", "--credit", "to-go"]
MRO = ["--rewards", "tv=0.1,ppl=0.1,q", "--format-weight", "0", "--shaping", "true", "--credit", "group",
       "--w", "1", "--groups", "2", "--proposal", "uniform"]
ARMS = {
    # main rows (3 seeds)
    "rs": dict(verb="rs", minutes=5, seeds=(0, 1, 2), flags=[
        "--problems", "4000", "--collect-batch", "500", "--collect-steps", "3", "--collect-temperature", "0.5",
        "--k", "4", "--w", "1", "--rewards", "tv,ppl,q", "--target", "final", "--lr", "3e-4", "--batch-size", "64",
        "--val-every", "50"]),
    # RS from the model's own many-step decodes: best-of-n (k = 2: the greedy decode and one sample
    # at T = 0.5, majority vote, ties to the greedy one) at 12 steps, where it solves every puzzle,
    # so the hard puzzles are in the data too; the target is the final grid at every state
    "rs-12": dict(verb="rs", minutes=8, seeds=(0, 1, 2), flags=[
        "--problems", "8000", "--collect-batch", "500", "--collect", "best-of-n", "--collect-steps", "12",
        "--collect-temperature", "0.5", "--k", "2", "--select", "vote", "--rewards", "q", "--target", "final",
        "--lr", "3e-4", "--batch-size", "64", "--val-every", "50"]),
    "rl-correctness": dict(verb="rl", minutes=6, seeds=(0, 1, 2), flags=RL + CORRECTNESS),
    "rl-mro": dict(verb="rl", minutes=6, seeds=(0, 1, 2), flags=RL + MRO),
    # the shipped recipe: RL (correctness + the completability potential, per-group credit) from the RS model
    "rs-then-rl": dict(verb="rl", minutes=6, seeds=(0, 1, 2), init="rs", flags=RL + [
        "--rewards", "q", "--format-weight", "0", "--shaping", "true", "--credit", "group"]),
    # one more recipe for the shipped RL model (from the RS run of the same seed): correctness
    # only, rollouts at 2 and 3 steps, a lower learning rate
    "rs-then-rl-q": dict(verb="rl", minutes=6, seeds=(0, 1, 2), init="rs", flags=RL + CORRECTNESS + [
        "--steps", "2,3", "--lr", "5e-5"]),
    # the same from the rs-12 model: a lower learning rate and twice the problems per update, so
    # RL keeps what RS gained at 3 steps while it works on 2
    "rs-12-then-rl-q": dict(verb="rl", minutes=8, seeds=(0, 1, 2), init="rs-12", flags=RL + CORRECTNESS + [
        "--steps", "2,3", "--lr", "2e-5", "--prompts", "32", "--val-every", "20"]),
    # the same two stages with the learning rate decayed (cosine, to a tenth at a fixed number of
    # updates) and the best checkpoint picked on 1,024 validation puzzles instead of 256: at
    # constant lr the validation score moves by +-1.5 points between checks, and the best of ~50
    # noisy checks on 256 puzzles overstates the test score by 2-3 points
    "rs-12c": dict(verb="rs", minutes=12, seeds=(0, 1, 2), flags=[
        "--problems", "8000", "--collect-batch", "500", "--collect", "best-of-n", "--collect-steps", "12",
        "--collect-temperature", "0.5", "--k", "2", "--select", "vote", "--rewards", "q", "--target", "final",
        "--lr", "3e-4", "--batch-size", "64", "--updates", "2500", "--lr-schedule", "cosine", "--val-n", "1024",
        "--val-every", "100"]),
    # RL after RS at 2 and 3 steps traded about a point at 3 steps for 3 at 2: rollouts at 3 steps only
    # (from rs-12c, rollouts at 2 and 3 steps lost validation score in both seeds tried in 200 updates)
    "rs-12c-then-rl": dict(verb="rl", minutes=8, seeds=(0, 1, 2), init="rs-12c", flags=RL + CORRECTNESS + [
        "--lr", "2e-5", "--prompts", "32", "--updates", "600", "--lr-schedule", "cosine",
        "--val-n", "1024", "--val-every", "50"]),
    # the same, gentler: rollouts at T = 1 (closer to the greedy decode that is scored) and lr 5e-6
    "rs-12c-then-rl-t1": dict(verb="rl", minutes=8, seeds=(0, 1, 2), init="rs-12c", flags=RL + CORRECTNESS + [
        "--lr", "5e-6", "--temperature", "1", "--prompts", "32", "--updates", "600", "--lr-schedule", "cosine",
        "--val-n", "1024", "--val-every", "50"]),
    # ablation of rl-mro (seed 0): each changes one thing
    "abl-no-tv": dict(verb="rl", minutes=4, seeds=(0,), flags=RL + MRO + ["--rewards", "ppl=0.1,q"]),
    "abl-no-ppl": dict(verb="rl", minutes=4, seeds=(0,), flags=RL + MRO + ["--rewards", "tv=0.1,q"]),
    "abl-no-sgro": dict(verb="rl", minutes=4, seeds=(0,), flags=RL + MRO + ["--shaping", "false", "--groups", "0",
                                                                         "--credit", "to-go"]),
    "abl-all-groups": dict(verb="rl", minutes=4, seeds=(0,), flags=RL + MRO + ["--groups", "0"]),
    "abl-baseline-none": dict(verb="rl", minutes=4, seeds=(0,), flags=RL + MRO + ["--baseline", "none"]),
}


def run_dir(arm: str, seed: int) -> Path:
    return RUNS / f"{arm}-s{seed}"


def train_and_eval(arm: str, seed: int) -> dict:
    """Train one arm/seed (resuming a partial run), then evaluate its best model; cached in eval.json."""
    out = run_dir(arm, seed)
    done = out / "eval.json"
    if done.is_file():
        return json.loads(done.read_text())
    spec = ARMS[arm]
    cmd = [sys.executable, "-m", "mro", "train", spec["verb"], *COMMON, *spec["flags"], "--seed", str(seed),
           "--max-minutes", str(spec["minutes"]), "--out", str(out)]
    if spec.get("init"):  # starts from another arm's model (the last --model wins)
        start = train_and_eval(spec["init"], seed)
        cmd += ["--model", str(run_dir(start["arm"], seed) / "best")]
    if (out / "run.json").is_file():
        cmd.append("--resume")
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    result = {"arm": arm, "seed": seed, "command": " ".join(["mro", *cmd[3:]]), "wall_s": round(time.time() - t0, 1)}
    result["solved"] = evaluate(out / "best", out / "eval", seed=0)
    result.update(train_stats(out))
    done.write_text(json.dumps(result, indent=2))
    return result


def run_safely(arm: str, seed: int) -> dict | None:
    """One job; a failure is reported and the other jobs go on (a rerun retries it)."""
    try:
        return train_and_eval(arm, seed)
    except Exception as e:  # noqa: BLE001 - a benchmark job, reported and skipped
        print(f"{arm} seed {seed} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def evaluate(model: Path, out: Path, decode: str = "vanilla", seed: int = 0, **search) -> dict:
    """Solved % at each of EVAL_STEPS on the README's 500 test puzzles."""
    from mro.eval.harness import EvalConfig, run_eval

    shutil.rmtree(out, ignore_errors=True)
    s = run_eval(EvalConfig(model=str(model), steps=list(EVAL_STEPS), decode=decode, seed=seed, out=str(out),
                            batch_size=250, progress=False, **TEST, **search))
    return {str(r["steps"]): round(100 * r["solved"], 2) for r in s["results"]}


def train_stats(out: Path) -> dict:
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    train = [r for r in log if r["kind"] == "train"]
    vals = [r for r in log if r["kind"] == "val"]
    best = max(vals, key=lambda r: r["score"])
    stats = {"updates": train[-1]["update"] if train else 0, "cpu_min": vals[-1]["cpu_min"],
             "best_update": best["update"], "best_val": {k: round(100 * v, 2) for k, v in best["solved"].items()}}
    rates = [r["rollouts_per_s"] for r in train if "rollouts_per_s" in r]
    if rates:
        stats["rollouts_per_s"] = round(statistics.median(rates), 1)
    return stats


def tts_rows(jobs: int) -> dict:
    """TTS-MRO (k=4, w=1, T=0.5) on the starting model and on each RL-MRO model; cached."""
    path = ROOT / "tts.json"
    cached = json.loads(path.read_text()) if path.is_file() else {}
    todo = [("vanilla", s) for s in (0, 1, 2)] + [("rl-mro", s) for s in (0, 1, 2)]
    for base, seed in todo:
        key = f"{base}-s{seed}"
        if key in cached:
            continue
        model = "sudoku-tiny" if base == "vanilla" else run_dir("rl-mro", seed) / "best"
        if base == "rl-mro" and not (Path(model) / "config.json").is_file():
            continue
        cached[key] = evaluate(Path(model), RUNS / f"tts-{key}", decode="tts-mro", seed=seed, k=4, w=1,
                               temperature=0.5)
        path.write_text(json.dumps(cached, indent=2))
    return cached


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def report(results: list[dict], tts: dict) -> None:
    from mro.eval.records import hardware, now

    by_arm: dict[str, list[dict]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(r)
    base = json.loads((ROOT / "vanilla.json").read_text())
    lines = ["# Training with MRO on sudoku-tiny", "",
             f"Solved % on 500 held-out test puzzles (10-12 blanks, generator seed 1234), greedy decoding unless "
             f"noted; training seeds 0, 1, 2 (mean ± std) for the main rows. Each run: one thread, at most its "
             f"CPU-minute budget, best checkpoint by validation. Made by `python benchmarks/train_sudoku.py` "
             f"({now()}).", "",
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
    lines += equal_updates(by_arm)
    lines += ["", "## RL ablation (seed 0, one change each from `rl-mro`)", "",
              "| arm | 12 | 4 | 3 | 2 | updates | rollouts/s (median) |", "|---|---|---|---|---|---|---|"]
    for arm in ["rl-mro"] + [a for a in ARMS if a.startswith("abl-")]:
        rows = [r for r in by_arm.get(arm, []) if r["seed"] == 0]
        if rows:
            r = rows[0]
            lines.append(f"| {arm} | " + " | ".join(f"{r['solved'][str(s)]:.1f}" for s in EVAL_STEPS) +
                         f" | {r['updates']} | {r.get('rollouts_per_s', '-')} |")
    lines += ["", "## Commands", ""] + [f"- `{r['arm']}` seed {r['seed']}: `{r['command'].replace(REPO, '')}`"
                                        for r in results]
    lines += ["", f"Hardware: {json.dumps(hardware())}"]
    (ROOT / "results.md").write_text("\n".join(lines) + "\n")
    (ROOT / "results.json").write_text(json.dumps({"vanilla": base, "tts": tts, "runs": results,
                                                   "hardware": hardware(), "date": now()}, indent=2))
    plot(by_arm)


def val_records(arm: str, seed: int) -> list[dict]:
    log = [json.loads(x) for x in (run_dir(arm, seed) / "log.jsonl").read_text().splitlines()]
    return [x for x in log if x["kind"] == "val"]


def equal_updates(by_arm: dict) -> list[str]:
    """Validation solved % of the RL arms at the same number of updates (the most every run reached)."""
    arms = [a for a in ("rl-correctness", "rl-mro") if by_arm.get(a)]
    if len(arms) < 2:
        return []
    common = min(max(v["update"] for v in val_records(a, r["seed"])) for a in arms for r in by_arm[a])
    lines = ["", f"Validation (256 held-out generator puzzles) at the same number of updates, {common} (mean over "
             "seeds): the same rollouts, whatever each update cost.", "",
             "| arm | 2 steps | 3 steps | 4 steps | CPU-min to get there |", "|---|---|---|---|---|"]
    for a in arms:
        at = [max((v for v in val_records(a, r["seed"]) if v["update"] <= common), key=lambda v: v["update"])
              for r in by_arm[a]]
        lines.append(f"| {a} | " + " | ".join(mean_std([100 * v["solved"][k] for v in at]) for k in ("2", "3", "4"))
                     + f" | {mean_std([v['cpu_min'] for v in at])} |")
    return lines


def plot(by_arm: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in ARMS if a in by_arm]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, steps in zip(axes, ("3", "2")):
        for i, arm in enumerate(arms):
            for j, r in enumerate(sorted(by_arm[arm], key=lambda r: r["seed"])):
                log = [json.loads(x) for x in (run_dir(arm, r["seed"]) / "log.jsonl").read_text().splitlines()]
                vals = [x for x in log if x["kind"] == "val"]
                ax.plot([x["cpu_min"] for x in vals], [100 * x["solved"][steps] for x in vals],
                        color=colors[i % len(colors)], alpha=0.85, lw=1.2, label=arm if j == 0 else None)
        ax.set_title(f"validation solved % at {steps} steps (greedy)")
        ax.set_xlabel("CPU-minutes of training")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("solved %")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(ROOT / "curves.png", dpi=110)
    plt.close(fig)


CHECKPOINTS = Path(__file__).resolve().parents[1] / "src" / "mro" / "checkpoints"


#: the common validation set the shipped models are chosen on (held-out generator puzzles; not the test set)
SELECT = dict(n=1024, seed=4242)


def selection_score(model: Path, task_name: str = "sudoku", steps: tuple[int, ...] = (2, 3, 4), **options) -> float:
    """Greedy solved rate, mean over ``steps``, on the SELECT problems of the task (generator
    ``options``; Sudoku's hard setting by default); cached next to the model."""
    cache = model.parent / "selection.json"
    if cache.is_file():
        return json.loads(cache.read_text())["score"]
    from mro.models.load import load_model
    from mro.tasks import get_task
    from mro.train.runs import ValSettings, validate

    task = get_task(task_name)
    options = options or dict(min_blanks=10, max_blanks=12)
    examples = task.generate(SELECT["n"], seed=SELECT["seed"], split="test", **options)
    solved = validate(load_model(str(model)), task, examples, ValSettings(val_steps=list(steps)))
    score = sum(solved.values()) / len(solved)
    cache.write_text(json.dumps({"score": score, "solved": {str(k): v for k, v in solved.items()}, **SELECT}))
    return score


def install(run: Path, name: str) -> None:
    """Copy a run's kept model into the package as built-in ``name``, with its settings and log."""
    dst = CHECKPOINTS / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(run / "best", dst)
    (dst / "selection.json").unlink(missing_ok=True)
    shutil.copy(run / "run.json", dst / "train_config.json")
    shutil.copy(run / "log.jsonl", dst / "train_log.txt")


def ship(results: list[dict]) -> dict:
    """Copy the kept models into the package: ``sudoku-tiny-rs`` (the RS recipe) and ``sudoku-tiny-rl``
    (the RL recipe) with the best mean score over their seeds, then that recipe's best seed. Every
    candidate's kept model is scored on one common validation set (SELECT: 1,024 held-out generator
    puzzles, greedy at 2, 3 and 4 steps), since the runs validated on sets of different sizes;
    never on the test puzzles."""
    chosen = {}
    for name, arms in (("sudoku-tiny-rs", ("rs", "rs-12", "rs-12c")),
                       ("sudoku-tiny-rl", ("rl-correctness", "rl-mro", "rs-then-rl", "rs-then-rl-q",
                                           "rs-12-then-rl-q", "rs-12c-then-rl", "rs-12c-then-rl-t1"))):
        # a run whose validation never beat its starting model kept that model: it shows nothing trained
        rows = [r for r in results if r["arm"] in arms and r["best_update"] > 0
                and (run_dir(r["arm"], r["seed"]) / "best" / "config.json").is_file()]
        if not rows:
            continue
        for r in rows:
            r["selection"] = selection_score(run_dir(r["arm"], r["seed"]) / "best")
        by_arm = {a: [r for r in rows if r["arm"] == a] for a in arms}
        arm = max((a for a in arms if by_arm[a]), key=lambda a: statistics.mean(r["selection"] for r in by_arm[a]))
        best = max(by_arm[arm], key=lambda r: r["selection"])
        install(run_dir(arm, best["seed"]), name)
        chosen[name] = {"arm": arm, "seed": best["seed"], "command": best["command"].replace(REPO, ""),
                        "validation": best["best_val"], "selection": round(100 * best["selection"], 2),
                        "test": best["solved"],
                        "candidates": {f"{r['arm']}-s{r['seed']}": round(100 * r["selection"], 2) for r in rows}}
    (ROOT / "shipped.json").write_text(json.dumps(chosen, indent=2))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="arms to run (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (one thread each)")
    parser.add_argument("--report-only", action="store_true", help="rebuild the tables from finished runs")
    parser.add_argument("--reeval", action="store_true",
                        help="decode every finished run's kept model (and the starting model) again with the current code")
    parser.add_argument("--ship", action="store_true",
                        help="copy the RS and RL models with the best validation scores into src/mro/checkpoints")
    args = parser.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    if args.reeval:
        for path in (ROOT / "vanilla.json", ROOT / "tts.json"):
            path.unlink(missing_ok=True)
        for a in ARMS:
            for seed in ARMS[a]["seeds"]:
                done = run_dir(a, seed) / "eval.json"
                if done.is_file():
                    result = json.loads(done.read_text())
                    result["solved"] = evaluate(run_dir(a, seed) / "best", run_dir(a, seed) / "eval", seed=0)
                    done.write_text(json.dumps(result, indent=2))
    if not (ROOT / "vanilla.json").is_file():
        (ROOT / "vanilla.json").write_text(json.dumps(evaluate(Path("sudoku-tiny"), RUNS / "vanilla-eval")))
    arms = args.only or list(ARMS)
    if not args.report_only:
        # arms that start from another arm's model run after it (second phase)
        for phase in ([a for a in arms if not ARMS[a].get("init")], [a for a in arms if ARMS[a].get("init")]):
            jobs = [(a, s) for a in phase for s in ARMS[a]["seeds"]]
            with ThreadPoolExecutor(args.jobs) as pool:
                list(pool.map(lambda j: run_safely(*j), jobs))
    results = [json.loads((run_dir(a, s) / "eval.json").read_text()) for a in ARMS for s in ARMS[a]["seeds"]
               if (run_dir(a, s) / "eval.json").is_file()]
    tts = tts_rows(args.jobs) if not args.report_only else (
        json.loads((ROOT / "tts.json").read_text()) if (ROOT / "tts.json").is_file() else {})
    report(results, tts)
    if args.ship:
        print(json.dumps(ship(results), indent=2))
    print((ROOT / "results.md").read_text())


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
