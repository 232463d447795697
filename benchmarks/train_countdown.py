"""The shipped tiny Countdown model: layout and size search, then the shipped run
(docs/method.md section 9).

Each trial trains a tiny diffusion LM from scratch with ``mro train sft`` on 3-number Countdown
(numbers 1-100, targets up to 100, the shape of d1's ``cd3`` files) from the generator's training
split, validating every few hundred steps on 256 held-out generator problems (greedy, one token
per step). The finished model is then decoded greedily, one token per step, on 1,000 held-out
test problems (generator seed 1234, test split). Trials are independent jobs, one thread each
unless the trial says otherwise, two side by side; a finished trial (its ``eval.json``) is skipped and an interrupted one resumes
from its checkpoint:

    python benchmarks/train_countdown.py                 # every trial
    python benchmarks/train_countdown.py --only chain-d128
    python benchmarks/train_countdown.py --report-only   # tables and curves from finished trials
    python benchmarks/train_countdown.py --ship          # copy the best trial to src/mro/checkpoints/countdown-tiny,
                                                         # train the PPL scorer, copy it to .../countdown-ar-tiny
    -> benchmarks/results/train_countdown/{results.json,results.md,curves.png,runs/*}
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

ROOT = Path(__file__).resolve().parent / "results" / "train_countdown"
RUNS = ROOT / "runs"
SHIP = Path(__file__).resolve().parents[1] / "src" / "mro" / "checkpoints" / "countdown-tiny"
PROBLEMS = "n_numbers=3,max_number=100,max_target=100"
SHIP_AR = SHIP.parent / "countdown-ar-tiny"
#: the PPL scorer of R_ppl: a small causal LM on the shipped layout's responses (chains), whole
#: and with a random share of their characters dropped (docs/method.md section 3)
SCORER = ["--task", "countdown", "--task-options", PROBLEMS + ",layout=chain", "--steps", "1500", "--batch-size",
          "256", "--lr", "3e-3", "--warmup", "50", "--d-model", "64", "--n-layers", "2", "--n-heads", "2",
          "--d-ff", "256", "--seed", "0", "--threads", "1"]
TEST = dict(task="countdown", n=1000, task_options=PROBLEMS, data_seed=1234)
COMMON = ["--task", "countdown", "--threads", "1", "--batch-size", "256", "--lr", "1e-3", "--warmup", "200",
          "--val-n", "256", "--seed", "0", "--save-every", "100"]
TRIALS = {
    # layout search at equal steps (d=128, 4 layers: sudoku-tiny's size)
    "expression-d128": dict(steps=2000, flags=["--task-options", PROBLEMS + ",layout=expression"]),
    "chain-d128": dict(steps=2000, flags=["--task-options", PROBLEMS + ",layout=chain"]),
    "chain-padded-d128": dict(steps=2000, flags=["--task-options", PROBLEMS + ",layout=chain-padded"]),
    # half the rows masked as a suffix of the response, so a result is often masked with its
    # operands in view (rare under i.i.d. masks: the arithmetic is what the model fails to learn)
    "chain-ordered-d128": dict(steps=2000, flags=["--task-options", PROBLEMS + ",layout=chain",
                                                  "--ordered-masks", "0.5"]),
    # the shipped candidate: the chain layout for as long as one thread allows in under an hour
    "chain-d128-long": dict(steps=4500, val_every=250, flags=["--task-options", PROBLEMS + ",layout=chain"]),
    # the same recipe under bf16 autocast (1.5x the steps per second), run for nearly an hour
    "chain-d128-bf16": dict(steps=7000, val_every=500, flags=["--task-options", PROBLEMS + ",layout=chain",
                                                              "--bf16"]),
    # more, smaller updates and 10x the weight decay (both shorten the plateau before arithmetic
    # is learned in small transformers); stopped at step 6,140 (24 minutes): at equal problems
    # seen (its step 5,000, chain-d128-bf16's 2,500) it validated lower (2.3% vs 4.3%)
    "chain-d128-b128-wd": dict(steps=13000, val_every=1000, flags=[
        "--task-options", PROBLEMS + ",layout=chain", "--bf16", "--batch-size", "128", "--weight-decay", "0.1"]),
    # twice the learning rate and 10x the weight decay at chain-d128-bf16's batch and steps; stopped
    # at step 1,540: its loss was behind chain-d128-bf16's at every step so far
    "chain-d128-lr2e-3-wd": dict(steps=7000, val_every=500, flags=[
        "--task-options", PROBLEMS + ",layout=chain", "--bf16", "--lr", "2e-3", "--weight-decay", "0.1"]),
    # 4x the parameters (d=256): at 0.8M parameters and ~9k tokens a step, the d=128 runs see
    # 100+ tokens per parameter, far past where a bigger model learns more per unit of compute;
    # both threads (started while chain-d128-bf16 still had 17 minutes to run); stopped at step
    # 1,060: its loss was behind the d=128 run's at every step (0.71 vs 0.65 at 1,060)
    "chain-d256-bf16": dict(steps=4800, val_every=400, flags=[
        "--task-options", PROBLEMS + ",layout=chain", "--bf16", "--d-model", "256", "--d-ff", "1024",
        "--threads", "2"]),
    # chain-d128-bf16 (47.6% test after 7,000 steps, still rising) with both threads, alone:
    # 0.25 s a step, so more steps in the hour
    "chain-d128-bf16-2t": dict(steps=11000, val_every=500, flags=[
        "--task-options", PROBLEMS + ",layout=chain", "--bf16", "--threads", "2"]),
}


def run_dir(name: str) -> Path:
    return RUNS / name


def train_and_eval(name: str) -> dict:
    """Train one trial (resuming a partial one), then evaluate it; cached in eval.json."""
    out = run_dir(name)
    done = out / "eval.json"
    if done.is_file():
        return json.loads(done.read_text())
    spec = TRIALS[name]
    val_every = spec.get("val_every", max(100, spec["steps"] // 10))
    cmd = [sys.executable, "-m", "mro", "train", "sft", *COMMON, *spec["flags"], "--steps", str(spec["steps"]),
           "--val-every", str(val_every), "--out", str(out)]
    if (out / "checkpoint.pt").is_file() and not (out / "model.safetensors").is_file():
        cmd.append("--resume")
    if not (out / "model.safetensors").is_file():
        t0, c0 = time.time(), _child_cpu()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (out / "cost.json").write_text(json.dumps({"wall_min": round((time.time() - t0) / 60, 2),
                                                    "cpu_min": round((_child_cpu() - c0) / 60, 2)}))
    result = {"trial": name, "command": " ".join(["mro", *cmd[3:]]), **spec}
    result.update(json.loads((out / "cost.json").read_text()) if (out / "cost.json").is_file() else {})
    result["solved"] = evaluate(out, out / "eval")
    done.write_text(json.dumps(result, indent=2))
    return result


def _child_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def evaluate(model: Path, out: Path) -> float:
    """Solved % on the 1,000 test problems, greedy, one token per step."""
    from mro.eval.harness import EvalConfig, run_eval

    shutil.rmtree(out, ignore_errors=True)
    s = run_eval(EvalConfig(model=str(model), steps=[20], seed=0, out=str(out), batch_size=250, progress=False,
                            **TEST))
    return round(100 * s["results"][0]["correct"], 2)


def probe(name: str) -> dict | None:
    """What the trial's last checkpoint has learned, one forward pass each on 500 held-out problems
    written in its layout: ``result``: the first step's result right (every digit) with its
    operands shown and the rest of the chain masked (the arithmetic); ``operands``: the first
    step's operand digits right with the rest of the chain shown (copying and choosing numbers).
    Cached in ``probe.json`` next to the log."""
    out = run_dir(name)
    cache, ckpt = out / "probe.json", out / "checkpoint.pt"
    step = max((x["step"] for x in log_rows(name)), default=0)
    if cache.is_file() and json.loads(cache.read_text())["step"] == step:
        return json.loads(cache.read_text())
    if not ckpt.is_file():
        return json.loads(cache.read_text()) if cache.is_file() else None
    import torch

    from mro.models.tiny import TinyDLM
    from mro.sampling.batch import layout as pad_batch
    from mro.tasks import get_task

    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    c = state["config"]
    model = TinyDLM.create(d_model=c["d_model"], n_layers=c["n_layers"], n_heads=c["n_heads"], d_ff=c["d_ff"])
    model.module.load_state_dict(state["model"])
    model.module.eval()
    tok, task = model.tokenizer, get_task("countdown")
    options = dict(kv.split("=") for kv in c["task_options"].split(","))
    examples = task.generate(500, seed=99, split="test", layout=options.get("layout", "expression"))
    targets = [task.tiny_target(e, tok) for e in examples]
    tokens, attn, p = pad_batch([t.prompt_ids for t in targets], [t.response_ids for t in targets], tok.pad_token_id)
    result = {"step": state["step"]}
    for kind in ("result", "operands"):
        x, scored = tokens.clone(), torch.zeros_like(tokens, dtype=torch.bool)
        for i, e in enumerate(examples):
            sol = e.data["solution"]
            if "=" not in sol:
                return None  # the expression layout has no written steps to probe
            eq, comma = sol.index("="), sol.find(",")
            masked = range(eq + 1, len(sol)) if kind == "result" else [j for j in range(eq) if sol[j].isdigit()]
            for j in masked:
                x[i, p + j] = tok.mask_token_id
            for j in (range(eq + 1, comma if comma > 0 else len(sol)) if kind == "result" else masked):
                scored[i, p + j] = True
        with torch.no_grad():
            pred = model.logits(x, attn).argmax(-1)
        right = [bool((pred[i][scored[i]] == tokens[i][scored[i]]).all()) for i in range(len(examples))]
        result[kind] = round(100 * sum(right) / len(right), 1)
    cache.write_text(json.dumps(result))
    return result


def run_safely(name: str) -> dict | None:
    try:
        return train_and_eval(name)
    except Exception as e:  # noqa: BLE001 - a benchmark job, reported and skipped
        print(f"{name} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def log_rows(name: str) -> list[dict]:
    path = run_dir(name) / "train_log.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def report(results: list[dict]) -> None:
    from mro.eval.records import hardware, now

    lines = ["# The tiny Countdown model: layout and size search", "",
             f"3-number Countdown (numbers 1-100, targets up to 100), trained from scratch by `mro train sft` on "
             f"the generator's training split; solved % on 1,000 held-out test problems (generator seed 1234), "
             f"greedy, one token per step (20 steps). One thread per trial unless its command says `--threads 2`. "
             f"Made by "
             f"`python benchmarks/train_countdown.py` ({now()}).", "",
             "| trial | layout | masks | steps run / planned | final loss | best val % (step) | arithmetic % | "
             "operands % | test solved % |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows = log_rows(r["trial"])
        losses = [x["loss"] for x in rows if "loss" in x]
        vals = [(x["val"]["20"], x["step"]) for x in rows if "val" in x]
        best = max(vals) if vals else (float("nan"), 0)
        flags = dict(zip(r["flags"][::2], r["flags"][1::2]))
        layout = flags.get("--task-options", "").rsplit("layout=", 1)[-1]
        masks = f"{float(flags['--ordered-masks']):.0%} suffix" if "--ordered-masks" in flags else "i.i.d."
        pr = probe(r["trial"]) or {}
        done = max((x["step"] for x in rows), default=0)
        solved = f"{r['solved']:.1f}" if "solved" in r else "-"
        lines.append(f"| {r['trial']} | {layout} | {masks} | {done} / {r['steps']} | "
                     f"{losses[-1] if losses else '-'} | {100 * best[0]:.1f} ({best[1]}) | {pr.get('result', '-')} | "
                     f"{pr.get('operands', '-')} | {solved} |")
    lines += ["", "Arithmetic %: the first step's result right with its operands shown and the rest of the chain "
              "masked; operands %: the first step's operand digits right with the rest of the chain shown "
              "(one forward pass, 500 held-out problems, at the trial's last checkpoint; `probe` in the script). "
              "A trial stopped before its planned steps (`steps run`) resumes from its checkpoint when the "
              "script is rerun.", "", "## Commands", ""] + [f"- `{r['trial']}`: `{r['command']}`" for r in results]
    lines += ["", f"Hardware: {json.dumps(hardware())}"]
    (ROOT / "results.md").write_text("\n".join(lines) + "\n")
    (ROOT / "results.json").write_text(json.dumps({"results": results, "hardware": hardware()}, indent=2))
    plot(results)


def plot(results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in results:
        rows = log_rows(r["trial"])
        axes[0].plot([x["step"] for x in rows if "loss" in x], [x["loss"] for x in rows if "loss" in x],
                     label=r["trial"])
        vals = [x for x in rows if "val" in x]
        axes[1].plot([x["step"] for x in vals], [100 * x["val"]["20"] for x in vals], marker="o", label=r["trial"])
    axes[0].set(xlabel="training step", ylabel="masked-diffusion loss (smoothed)", title="training loss")
    axes[1].set(xlabel="training step", ylabel="validation solved % (1 token / step)",
                title="256 held-out problems, greedy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "curves.png", dpi=110)
    plt.close(fig)


def train_scorer() -> dict:
    """Train the PPL scorer (``countdown-ar-tiny``) once; its command and cost in ``scorer.json``."""
    out, info = RUNS / "countdown-ar-tiny", ROOT / "scorer.json"
    if info.is_file():
        return json.loads(info.read_text())
    cmd = [sys.executable, "-m", "mro", "train", "ar", *SCORER, "--out", str(out)]
    if (out / "checkpoint.pt").is_file():
        cmd.append("--resume")
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    losses = [json.loads(x)["loss"] for x in (out / "train_log.jsonl").read_text().splitlines() if "loss" in x]
    result = {"command": " ".join(["mro", *cmd[3:]]), "wall_min": round((time.time() - t0) / 60, 2),
              "final_loss": losses[-1]}
    info.write_text(json.dumps(result, indent=2))
    return result


def ship(results: list[dict]) -> dict:
    """Copy the trial with the best validation score (never the test problems) to the package."""
    def best_val(r):
        return max((x["val"]["20"] for x in log_rows(r["trial"]) if "val" in x), default=0.0)

    best = max((r for r in results if "solved" in r), key=best_val)
    src = run_dir(best["trial"])
    shutil.rmtree(SHIP, ignore_errors=True)
    SHIP.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_config.json"):
        shutil.copy(src / name, SHIP / name)
    shutil.copy(src / "train_log.jsonl", SHIP / "train_log.txt")
    scorer = train_scorer()
    shutil.rmtree(SHIP_AR, ignore_errors=True)
    SHIP_AR.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_config.json"):
        shutil.copy(RUNS / "countdown-ar-tiny" / name, SHIP_AR / name)
    shutil.copy(RUNS / "countdown-ar-tiny" / "train_log.jsonl", SHIP_AR / "train_log.txt")
    info = {"trial": best["trial"], "command": best["command"], "test_solved": best["solved"], "scorer": scorer}
    (ROOT / "shipped.json").write_text(json.dumps(info, indent=2))
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="trials to run (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="trials side by side (one thread each)")
    parser.add_argument("--report-only", action="store_true", help="rebuild the tables from finished trials")
    parser.add_argument("--ship", action="store_true", help="copy the best finished trial into the package")
    args = parser.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(run_safely, args.only or list(TRIALS)))
    results = [json.loads((run_dir(t) / "eval.json").read_text()) if (run_dir(t) / "eval.json").is_file()
               else {"trial": t, **TRIALS[t], "command": "mro train sft " + " ".join(
                   COMMON + TRIALS[t]["flags"] + ["--steps", str(TRIALS[t]["steps"]), "--out", str(run_dir(t))])}
               for t in TRIALS if log_rows(t)]
    report(results)
    if args.ship:
        print(json.dumps(ship(results), indent=2))
    print((ROOT / "results.md").read_text())


if __name__ == "__main__":
    main()
