"""Accuracy of the shipped tiny Sudoku model vs tokens per step, and the hard setting.

Two held-out sets: 500 puzzles with 10-12 blanks (several solutions allowed; any valid
completion counts) and 500 unique-solution puzzles with 8 blanks (d1's test shape). Greedy
low-confidence decoding, one block. The hard setting is the fewest tokens per step at which
vanilla decoding loses >= 10 points of solved rate against one token per step.

    python benchmarks/sudoku_tokens_per_step.py     # -> benchmarks/results/sudoku_tokens_per_step.{json,md,png}
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from mro.eval.harness import EvalConfig, run_eval

RESULTS = Path(__file__).parent / "results"
SETS = {
    "10-12 blanks (several solutions)": "min_blanks=10,max_blanks=12",
    "8 blanks, unique solution (d1 shape)": "min_blanks=8,max_blanks=8,unique=true",
}
TPS = [1, 2, 3, 4, 6]


def main() -> dict:
    RESULTS.mkdir(exist_ok=True)
    out = {}
    lines = ["| puzzles | " + " | ".join(f"{k} tok/step" for k in TPS) + " |", "|---|" + "---|" * len(TPS)]
    for label, options in SETS.items():
        run = Path("runs/bench_tps") / options.replace(",", "_").replace("=", "")
        shutil.rmtree(run, ignore_errors=True)
        s = run_eval(EvalConfig(model="sudoku-tiny", task="sudoku", n=500, task_options=options,
                                tokens_per_step=TPS, out=str(run), batch_size=250, progress=False))
        out[label] = s
        by_steps = {r["steps"]: r for r in s["results"]}
        most = round(s["results"][0]["tokens_per_step"] * s["results"][0]["steps"])
        cells = []
        for k in TPS:  # a requested setting that rounds to the same step count shares its result
            r = by_steps[math.ceil(most / k)]
            cells.append(f"{100 * r['solved']:.1f} / {100 * r['cell_accuracy']:.1f} ({r['steps']} steps)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if label.startswith("10-12"):
            shutil.copy(run / "accuracy_vs_steps.png", RESULTS / "sudoku_tokens_per_step.png")
    main_rows = out[next(iter(SETS))]["results"]
    base = main_rows[0]["solved"]
    hard = next((r for r in main_rows if base - r["solved"] >= 0.10), None)
    hard_text = (f"hard setting: {hard['tokens_per_step']:g} tokens per step ({hard['steps']} steps): "
                 f"solved {100 * hard['solved']:.1f}% vs {100 * base:.1f}% at 1 token per step"
                 if hard else "no setting loses 10 points")
    lines += ["", "cells: solved % / cell accuracy % over blanks (steps). " + hard_text]
    meta = next(iter(out.values()))
    lines.append(f"model sudoku-tiny, greedy (temperature 0), low_confidence remasking, one block of 16, "
                 f"500 held-out puzzles per row (data seed 1234), decoding seed 0, {meta['hardware']['processor']}, "
                 f"torch {meta['hardware']['torch']}")
    (RESULTS / "sudoku_tokens_per_step.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "sudoku_tokens_per_step.json").write_text(json.dumps(
        {"hard_setting": hard and {k: hard[k] for k in ("tokens_per_step", "steps", "solved")},
         "runs": out}, indent=2))
    print("\n".join(lines))
    return out


if __name__ == "__main__":
    main()
