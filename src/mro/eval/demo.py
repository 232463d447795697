"""``mro demo``: the main job on the embedded default (spec sections 1 and 6).

Loads the shipped tiny Sudoku model and shows how accuracy falls as more tokens are committed
per denoising step, on held-out puzzles with several solutions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from mro.eval.harness import EvalConfig, run_eval


@dataclass
class DemoConfig:
    """Run the embedded default end to end."""

    n: int = field(default=500, metadata={"help": "held-out puzzles"})
    tokens_per_step: list[float] = field(default_factory=lambda: [1, 2, 3, 4, 6],
                                         metadata={"help": "tokens committed per step"})
    out: str = field(default="runs/demo", metadata={"help": "output folder"})
    seed: int = field(default=0, metadata={"help": "decoding seed"})


def run_demo(cfg: DemoConfig, console: Console | None = None) -> dict:
    console = console or Console()
    console.print("[bold]mro demo[/]: shipped tiny diffusion LM (sudoku-tiny) on held-out 4x4 Sudoku, "
                  "10-12 blanks (several solutions allowed), greedy low-confidence decoding")
    summary = run_eval(EvalConfig(model="sudoku-tiny", task="sudoku", n=cfg.n, task_options="min_blanks=10,max_blanks=12",
                                  tokens_per_step=cfg.tokens_per_step, out=cfg.out, seed=cfg.seed, batch_size=250))
    table = Table(title=f"accuracy vs tokens per step ({cfg.n} puzzles)")
    for col in ("tokens/step", "steps", "solved %", "cell accuracy %"):
        table.add_column(col, justify="right")
    for r in summary["results"]:
        table.add_row(f"{r['tokens_per_step']:g}", str(r["steps"]), f"{100 * r['solved']:.1f}",
                      f"{100 * r['cell_accuracy']:.1f}")
    console.print(table)
    console.print(f"table: {summary['table']}\nplot:  {summary['plot']}")
    return summary
