"""Accuracy per forward: solved % against DLM forwards per problem for the shipped vanilla, RS- and
RL-trained tiny models on Sudoku and Countdown, over fixed schedules, confidence thresholds and
thresholds with a minimum number of tokens per step (docs/method.md section 8, "Accuracy per forward").

Every point is one ``mro eval`` setting (greedy, 500 held-out problems, the README's problem sets),
run in-process with ``run_eval``; forwards per problem count, for threshold decoding, the steps at
which that problem committed a token. The frontier of a model is the best solved rate at or
below each forward budget, reported against the goals of docs/method.md section 8 ("Accuracy
per forward").

    python benchmarks/frontier.py          # -> benchmarks/results/frontier/{frontier.md,frontier.json,frontier.png}
    python benchmarks/frontier.py --report-only   # redraw the table and chart from finished runs

Single-threaded (``torch.set_num_threads(1)``); measured on a shared 2-core machine (only counts
and accuracies are reported, no times).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mro.eval.harness import EvalConfig, run_eval
from mro.eval.records import save_report
from mro.eval.report import log_forwards_axis
from mro.io import read_json
from mro.models.load import builtin_models

RESULTS = Path(__file__).parent / "results" / "frontier"
RUNS = Path("runs/frontier")
N = 500
THRESHOLDS = [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999]
TASKS = {
    "sudoku": dict(options="min_blanks=10,max_blanks=12", models=["sudoku-tiny", "sudoku-tiny-rs", "sudoku-tiny-rl"],
                   tokens_per_step=[1, 2, 3, 4, 6, 12], min_tokens=[2, 3, 4, 6], budgets=[1, 2, 3, 4, 6, 12]),
    "countdown": dict(options="n_numbers=3,max_number=100,max_target=100", models=["countdown-tiny", "countdown-tiny-rs"],
                      tokens_per_step=[1, 2, 4, 5, 10, 20], min_tokens=[2, 4, 5, 10],
                      budgets=[1, 2, 4, 5, 10, 20]),
}


def runs_of(task: str, spec: dict, model: str) -> dict[str, dict]:
    """Every decoding of one model: the fixed schedules, plain thresholds, and each minimum."""
    common = dict(model=model, task=task, n=N, task_options=spec["options"], batch_size=250, progress=False)
    plans = {"fixed": dict(tokens_per_step=spec["tokens_per_step"]), "threshold": dict(threshold=THRESHOLDS)}
    plans |= {f"threshold, >= {m} tokens/step": dict(threshold=THRESHOLDS, min_tokens=m) for m in spec["min_tokens"]}
    out = {}
    for kind, extra in plans.items():
        folder = RUNS / task / model / kind.replace(", >= ", "-min").replace(" tokens/step", "")
        out[kind] = run_eval(EvalConfig(**common, **extra, out=str(folder)))
    return out


def points(runs: dict[str, dict], metric: str) -> list[dict]:
    """One point per setting: its kind, knob, forwards per problem, tokens per forward, solved %."""
    pts = []
    for kind, summary in runs.items():
        for r in summary["results"]:
            knob = f"{r['steps']} steps" if r["threshold"] is None else f"threshold {r['threshold']:g}"
            pts.append({"kind": kind, "setting": knob, "forwards": r["nfe_per_example"],
                        "tokens_per_forward": r["tokens_per_forward"], "solved": 100 * r[metric],
                        "batch_steps": r.get("batch_steps_per_example")})
    return pts


def frontier(pts: list[dict], budget: float) -> dict | None:
    """The best point at or below ``budget`` forwards (ties: fewer forwards)."""
    inside = [p for p in pts if p["forwards"] <= budget + 1e-9]
    return max(inside, key=lambda p: (p["solved"], -p["forwards"])) if inside else None


def label(p: dict | None) -> str:
    if p is None:
        return "-"
    how = p["setting"] if p["kind"] in ("fixed", "threshold") else f"{p['setting']}, {p['kind'].split(', ')[1]}"
    return f"{p['solved']:.1f} ({p['forwards']:.2f} fw; {how})"


def report(all_points: dict, metrics: dict) -> None:
    lines = ["# Accuracy per forward: solved % at or below a forward budget", ""]
    for task, spec in TASKS.items():
        models = [m for m in spec["models"] if m in all_points]
        if not models:
            continue
        budgets = spec["budgets"]
        lines += [f"## {task} ({N} held-out problems, {spec['options']})", "",
                  "| model | " + " | ".join(f"<= {b} forwards" for b in budgets) + " |",
                  "|---|" + "---|" * len(budgets)]
        for m in models:
            for kind_set, name in ((("fixed",), "fixed schedule"), (("fixed", "threshold"), "+ threshold"),
                                   (None, "+ threshold with a minimum")):
                pts = [p for p in all_points[m] if kind_set is None or p["kind"] in kind_set]
                lines.append(f"| {m}, {name} | " + " | ".join(label(frontier(pts, b)) for b in budgets) + " |")
        lines += [""]
        lines += goals(task, models, all_points)
        lines += ["", f"Plain thresholds, forwards per problem against the steps a batch of 250 ran (it runs until "
                  "its slowest problem is done; the idle forwards of the finished problems are not counted above):", "",
                  "| model | " + " | ".join(f"{t:g}" for t in THRESHOLDS) + " |", "|---|" + "---|" * len(THRESHOLDS)]
        for m in models:
            cells = {p["setting"]: p for p in all_points[m] if p["kind"] == "threshold"}
            row = [cells.get(f"threshold {t:g}") for t in THRESHOLDS]
            lines.append(f"| {m} | " + " | ".join(
                "-" if p is None else f"{p['forwards']:.2f} / {p['batch_steps']:.1f}" if p.get("batch_steps")
                else f"{p['forwards']:.2f} / -" for p in row) + " |")
        lines += [""]
    lines += ["Cells: best solved % (forwards per problem; the setting) among the decodings of that row's kind "
              "at or below the budget. 'fixed schedule': LLaDA's even split over a number of steps; "
              "'+ threshold': also Fast-dLLM's confidence threshold (at least one token per step); "
              "'+ threshold with a minimum': also a threshold that commits at least m tokens per step "
              "(--threshold T --min-tokens m). Forwards per problem under threshold decoding count the steps at "
              "which that problem committed a token. Greedy (temperature 0), one block, decoding seed 0, data seed "
              f"1234; thresholds {', '.join(map(str, THRESHOLDS))}. Every point is in frontier.json."]
    data = {"n": N, "thresholds": THRESHOLDS, "tasks": {t: {k: v for k, v in s.items() if k != "models"}
                                                        for t, s in TASKS.items()},
            "points": all_points, "metrics": metrics}
    save_report(RESULTS, "frontier", lines, data)
    plot(all_points)


def goals(task: str, models: list[str], all_points: dict) -> list[str]:
    out = []
    for m in models:
        best = frontier(all_points[m], 3 if task == "sudoku" else 5)
        if task == "sudoku":
            ok = best is not None and best["solved"] >= 99.0
            out.append(f"- goal {m}: >= 99% at <= 3 forwards: {'met' if ok else 'not met'} ({label(best)})")
        else:
            one = next(p for p in all_points[m] if p["kind"] == "fixed" and p["setting"] == "20 steps")
            ok = best is not None and best["solved"] >= one["solved"] - 2
            out.append(f"- goal {m}: within 2 points of one token per step ({one['solved']:.1f}) at <= 5 forwards: "
                       f"{'met' if ok else 'not met'} ({label(best)})")
    return out


def plot(all_points: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, (task, spec) in zip(axes, TASKS.items()):
        for i, m in enumerate(m for m in spec["models"] if m in all_points):
            pts, color = all_points[m], f"C{i}"
            for kind, style in (("fixed", "-o"), ("threshold", "--s")):
                sel = sorted((p for p in pts if p["kind"] == kind), key=lambda p: p["forwards"])
                ax.plot([p["forwards"] for p in sel], [p["solved"] for p in sel], style, ms=4, color=color,
                        label=f"{m}: {kind}")
            mixed = [p for p in pts if p["kind"] not in ("fixed", "threshold")]
            if mixed:
                ax.scatter([p["forwards"] for p in mixed], [p["solved"] for p in mixed], s=12, alpha=0.5, color=color,
                           marker="x", label=f"{m}: threshold with a minimum")
        log_forwards_axis(ax)
        ax.set_xlabel("DLM forwards per problem (log scale)")
        ax.set_ylabel("solved %")
        ax.set_title(f"{task}: {N} held-out problems, greedy")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "frontier.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true", help="redraw from benchmarks/results/frontier/frontier.json")
    parser.add_argument("--tasks", default="sudoku,countdown", help="tasks to run (comma list)")
    args = parser.parse_args()
    if args.report_only:
        saved = read_json(RESULTS / "frontier.json", "frontier results")
        report(saved["points"], saved["metrics"])
        return
    torch.set_num_threads(1)
    shipped = builtin_models()
    all_points, metrics = {}, {}
    for task in args.tasks.split(","):
        spec = TASKS[task]
        for model in spec["models"]:
            if model not in shipped:
                print(f"skipping {model}: not shipped")
                continue
            runs = runs_of(task, spec, model)
            metric = runs["fixed"]["metrics"][0]
            metrics[task] = metric
            all_points[model] = points(runs, metric)
            print(f"{model}: {len(all_points[model])} settings")
    report(all_points, metrics)


if __name__ == "__main__":
    main()
