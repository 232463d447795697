"""``mro demo``: the main job on the embedded default (spec sections 1, 5 and 6).

Loads the shipped tiny Sudoku model and, on held-out puzzles with several solutions, shows how
accuracy falls as more tokens are committed per denoising step (vanilla, greedy), and what
reward-guided test-time scaling (TTS-MRO, k = 4) recovers at the same tokens per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mro.config import check_fields
from mro.errors import MroError
from mro.eval.harness import EvalConfig, run_eval
from mro.io import check_output_folder


@dataclass
class DemoConfig:
    """Run the embedded default end to end."""

    n: int = field(default=500, metadata={"help": "held-out puzzles", "min": 1, "max": 100_000})
    tokens_per_step: list[float] = field(default_factory=lambda: [1, 2, 3, 4, 6],
                                         metadata={"help": "tokens committed per step", "gt": 0})
    tts: bool = field(default=True, metadata={"help": "also decode with TTS-MRO (k=4, w=1, temperature 0.5)"})
    out: str = field(default="runs/demo", metadata={
        "help": "output folder; each puzzle count and seed gets its own subfolder n<N>-seed<S>"})
    seed: int = field(default=0, metadata={"help": "decoding seed"})

    def __post_init__(self):
        check_fields(self)
        check_output_folder(self.out)
        if not self.tokens_per_step:
            raise MroError("tokens_per_step needs at least one value")

    def folder(self) -> Path:
        """Where this demo's runs go: settings that change results get their own subfolder, so
        a rerun with other flags starts its own run (and one with the same flags resumes)."""
        return Path(self.out) / f"n{self.n}-seed{self.seed}"


def run_demo(cfg: DemoConfig, console: Console | None = None) -> dict:
    console = console or Console()
    console.print("[bold]mro demo[/]: shipped tiny diffusion LM (sudoku-tiny) on held-out 4x4 Sudoku with 10-12 "
                  "blanks (several solutions allowed; any valid completion counts)")
    common = dict(model="sudoku-tiny", task="sudoku", n=cfg.n, task_options="min_blanks=10,max_blanks=12",
                  tokens_per_step=cfg.tokens_per_step, seed=cfg.seed, batch_size=250)
    runs = {"vanilla": run_eval(EvalConfig(**common, out=str(cfg.folder() / "vanilla")))}
    if cfg.tts:
        console.print("decoding again with TTS-MRO (k=4 candidates per step, R_tv + R_ppl + R_q) ...")
        runs["tts-mro"] = run_eval(EvalConfig(**common, out=str(cfg.folder() / "tts-mro"), decode="tts-mro",
                                              temperature=0.5, k=4, w=1))
    table = Table(title=f"solved % vs tokens per step ({cfg.n} held-out puzzles)")
    for col in ("tokens/step", "steps", "vanilla (greedy)") + (("TTS-MRO k=4", "DLM forwards/puzzle") if cfg.tts else ()):
        table.add_column(col, justify="right")
    for i, r in enumerate(runs["vanilla"]["results"]):
        row = [f"{r['tokens_per_step']:g}", str(r["steps"]), f"{100 * r['solved']:.1f}"]
        if cfg.tts:
            t = runs["tts-mro"]["results"][i]
            row += [f"{100 * t['solved']:.1f}", f"{t['nfe_per_example']:.0f} (vanilla {r['nfe_per_example']:.0f})"]
        table.add_row(*row)
    console.print(table)
    for name, s in runs.items():
        console.print(f"{name}: table {s['table']}, plot {s['plot']}")
    return runs
