"""The shipped tiny Countdown model: layout and size search, then the shipped run
(docs/method.md section 9).

Each trial is a recipe, ``configs/recipes/countdown/sft/<trial>.yaml`` (``mro train sft --config
<file>`` runs it alone): a tiny diffusion LM trained from scratch on 3-number Countdown (numbers
1-100, targets up to 100, the shape of d1's ``cd3`` files) from the generator's training split,
validating every few hundred steps on 256 held-out generator problems (greedy, one token per
step). The finished model is then decoded greedily, one token per step, on 1,000 held-out test
problems (generator seed 1234, test split). Trials call ``train_sft(cfg)`` in-process, one thread
each unless the recipe says otherwise, two side by side, each in a process of its own; a finished
trial (its ``eval.json``) is skipped and an interrupted one resumes from its checkpoint:

    python benchmarks/train_countdown.py                 # every trial
    python benchmarks/train_countdown.py --only chain-d128
    python benchmarks/train_countdown.py --report-only   # tables and curves from finished trials
    python benchmarks/train_countdown.py --ship          # copy the best trial to src/mro/checkpoints/countdown-tiny,
                                                         # train the PPL scorer, copy it to .../countdown-ar-tiny
    -> benchmarks/results/train_countdown/{results.json,results.md,curves.png,runs/*}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from mro.config import parse_options
from mro.io import atomic_write_json, atomic_write_text, read_json

from common.recipes import REPO, command, load, recipe, train
from common.runs import (Bench, cpu_timed, evaluate, finished, parse_bench_args, provenance, read_log, record, run_jobs,
                         started)
from common.ship import install

ROOT = Path(__file__).resolve().parent / "results" / "train_countdown"
PROBLEMS = "n_numbers=3,max_number=100,max_target=100"
TEST = dict(task="countdown", n=1000, task_options=PROBLEMS, data_seed=1234)
#: the trials (recipes configs/recipes/countdown/sft/<trial>.yaml), in the order they are reported
TRIALS = ("expression-d128", "chain-d128", "chain-padded-d128", "chain-ordered-d128", "chain-d128-long",
          "chain-d128-bf16", "chain-d128-b128-wd", "chain-d128-lr2e-3-wd", "chain-d256-bf16", "chain-d128-bf16-2t")
SCORER = "countdown-ar-tiny"  # the PPL scorer's recipe: configs/recipes/countdown/ar/countdown-ar-tiny.yaml


def train_and_eval(bench: Bench, name: str) -> dict:
    """Train one trial (resuming a partial one), then evaluate it; kept in eval.json."""
    out = bench.run_dir(name)
    if done := finished(out):
        return done
    path, overrides = recipe("countdown", name), {**dict(bench.overrides), "out": out}
    model, cost = cpu_timed(train, path, **overrides, resume=started(out))
    atomic_write_json(out / "cost.json", cost)
    result = {"trial": name, "recipe": str(path.relative_to(REPO)), "command": command(path, **overrides),
              "steps": load(path, **overrides).steps, "model": os.path.relpath(model, out), **cost}
    result["solved"] = evaluate(model, out / "eval", "correct", steps=[20], seed=0,
                                **{**TEST, "n": bench.test_n or TEST["n"]})["20"]
    return record(out, result)


def log_rows(bench: Bench, name: str) -> list[dict]:
    """A trial's log as ``{"step", "loss"}`` and ``{"step", "val"}`` rows: the committed trials'
    logs were written that way by the old SFT loop; the trainer's log (``kind``/``update`` rows) is
    read into the same shape."""
    rows = read_log(bench.run_dir(name))
    return [r if "kind" not in r else {"step": r["update"], **({"loss": r["loss"]} if r["kind"] == "train" else
                                                                {"val": r["solved"]})}
            for r in rows if r.get("kind") in (None, "train", "val")]


def trials(bench: Bench) -> list[dict]:
    """Every trial that has run (finished or stopped), in the order of TRIALS: its record, or for a
    stopped trial its name and command."""
    return [finished(bench.run_dir(t)) or {"trial": t, "command": command(recipe("countdown", t), out=bench.run_dir(t))}
            for t in TRIALS if log_rows(bench, t)]


def probe(bench: Bench, name: str) -> dict | None:
    """What the trial's finished model has learned, one forward pass each on 500 held-out problems
    written in its layout: ``result``: the first step's result right (every digit) with its
    operands shown and the rest of the chain masked (the arithmetic); ``operands``: the first
    step's operand digits right with the rest of the chain shown (copying and choosing numbers).
    Cached in ``probe.json`` next to the log (a trial stopped early keeps the probe of its last
    checkpoint, taken when it stopped)."""
    out = bench.run_dir(name)
    cache = out / "probe.json"
    step = max((x["step"] for x in log_rows(bench, name)), default=0)
    if cache.is_file() and read_json(cache)["step"] == step:
        return read_json(cache)
    done = finished(out)
    folder = out / done.get("model", ".") if done else None
    if folder is None or not (folder / "config.json").is_file():  # no weights here: what was probed before
        return read_json(cache) if cache.is_file() else None
    from mro.models.load import load_model
    from mro.sampling.batch import layout as pad_batch
    from mro.tasks import get_task

    model = load_model(str(folder))
    tok, task = model.tokenizer, get_task("countdown")
    options = parse_options(load(recipe("countdown", name)).task_options)
    examples = task.generate(500, seed=99, split="test", layout=options.get("layout", "expression"))
    targets = [task.tiny_target(e, tok) for e in examples]
    tokens, attn, p = pad_batch([t.prompt_ids for t in targets], [t.response_ids for t in targets], tok.pad_token_id)
    result = {"step": step}
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
    atomic_write_json(cache, result)
    return result


def report(bench: Bench, results: list[dict], report_only: bool) -> None:
    hw, date = provenance(bench.root / "results.json", report_only)
    lines = ["# The tiny Countdown model: layout and size search", "",
             f"3-number Countdown (numbers 1-100, targets up to 100), trained from scratch by `mro train sft` on "
             f"the generator's training split; solved % on 1,000 held-out test problems (generator seed 1234), "
             f"greedy, one token per step (20 steps). One thread per trial unless its command says `--threads 2`. "
             f"Made by "
             f"`python benchmarks/train_countdown.py` ({date}).", "",
             "| trial | layout | masks | steps run / planned | final loss | best val % (step) | arithmetic % | "
             "operands % | test solved % |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows = log_rows(bench, r["trial"])
        losses = [x["loss"] for x in rows if "loss" in x]
        vals = [(x["val"]["20"], x["step"]) for x in rows if "val" in x]
        best = max(vals) if vals else (float("nan"), 0)
        cfg = load(recipe("countdown", r["trial"]))
        layout = parse_options(cfg.task_options).get("layout", "expression")
        masks = f"{cfg.ordered_masks:.0%} suffix" if cfg.ordered_masks else "i.i.d."
        pr = probe(bench, r["trial"]) or {}
        done = max((x["step"] for x in rows), default=0)
        solved = f"{r['solved']:.1f}" if "solved" in r else "-"
        lines.append(f"| {r['trial']} | {layout} | {masks} | {done} / {r.get('steps', cfg.steps)} | "
                     f"{losses[-1] if losses else '-'} | {100 * best[0]:.1f} ({best[1]}) | {pr.get('result', '-')} | "
                     f"{pr.get('operands', '-')} | {solved} |")
    lines += ["", "Arithmetic %: the first step's result right with its operands shown and the rest of the chain "
              "masked; operands %: the first step's operand digits right with the rest of the chain shown "
              "(one forward pass, 500 held-out problems, at the trial's last checkpoint; `probe` in the script). "
              "A trial stopped before its planned steps (`steps run`) resumes from its checkpoint when the "
              "script is rerun.", "", "## Commands", ""] + [f"- `{r['trial']}`: `{r['command']}`" for r in results]
    lines += ["", f"Hardware: {json.dumps(hw)}"]
    atomic_write_text(bench.root / "results.md", "\n".join(lines) + "\n")
    atomic_write_json(bench.root / "results.json", {"results": results, "hardware": hw, "date": date})
    plot(bench, results)


def plot(bench: Bench, results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in results:
        rows = log_rows(bench, r["trial"])
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
    fig.savefig(bench.root / "curves.png", dpi=110)
    plt.close(fig)


def train_scorer(bench: Bench) -> dict:
    """Train the PPL scorer (``countdown-ar-tiny``) once; its command and cost in ``scorer.json``."""
    out, info = bench.run_dir(SCORER), bench.root / "scorer.json"
    if info.is_file():
        return read_json(info)
    path, overrides = recipe("countdown", SCORER), {**dict(bench.overrides), "out": out}
    model, cost = cpu_timed(train, path, **overrides, resume=started(out))
    losses = [x["loss"] for x in read_log(out) if "loss" in x]
    result = {"recipe": str(path.relative_to(REPO)), "command": command(path, **overrides),
              "model": os.path.relpath(model, out),
              "wall_min": cost["wall_min"], "final_loss": losses[-1]}
    atomic_write_json(info, result)
    return result


def ship(bench: Bench, results: list[dict]) -> dict:
    """Copy the trial with the best validation score (never the test problems) to the package."""
    def best_val(r):
        return max((x["val"]["20"] for x in log_rows(bench, r["trial"]) if "val" in x), default=0.0)

    best = max((r for r in results if "solved" in r), key=best_val)
    run = bench.run_dir(best["trial"])
    rec = best.get("recipe") or str(recipe("countdown", best["trial"]).relative_to(REPO))
    install(run / best.get("model", "."), "countdown-tiny", run, "\n".join([
        "# countdown-tiny", "", "Bidirectional tiny diffusion LM for 3-number Countdown, trained from scratch "
        "(docs/method.md section 9).", "", f"- Recipe: `{rec}`; chosen by `python benchmarks/train_countdown.py "
        f"--ship` among {len(results)} trials by validation score.",
        f"- Test (1,000 problems, greedy, one token per step): {best['solved']:.1f}% solved.", ""]))
    scorer = train_scorer(bench)
    srun = bench.run_dir(SCORER)
    install(srun / scorer.get("model", "."), SCORER, srun, "\n".join([
        f"# {SCORER}", "", "Tiny causal LM, the PPL scorer of `R_ppl` for Countdown (docs/method.md section 3).", "",
        f"- Recipe: `{scorer.get('recipe', 'configs/recipes/countdown/ar/countdown-ar-tiny.yaml')}`; final loss "
        f"{scorer['final_loss']}.", ""]))
    info = {"trial": best["trial"], "recipe": rec, "command": best["command"], "test_solved": best["solved"],
            "scorer": scorer}
    atomic_write_json(bench.root / "shipped.json", info)
    return info


def main() -> None:
    args, bench = parse_bench_args(__doc__, ROOT, TRIALS, "copy the best finished trial into the package")
    if not args.report_only:
        run_jobs(train_and_eval, [(bench, t) for t in args.only or TRIALS], args.jobs)
    results = trials(bench)
    report(bench, results, args.report_only)
    if args.ship:
        print(json.dumps(ship(bench, results), indent=2))
    print((bench.root / "results.md").read_text())


if __name__ == "__main__":
    main()
