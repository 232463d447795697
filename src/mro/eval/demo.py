"""``mro demo``: the main job on the embedded default (docs/method.md sections 1, 5 and 8).

Loads the shipped tiny Sudoku model and, on held-out puzzles with several solutions, shows how
accuracy falls as more tokens are committed per denoising step (vanilla, greedy), what
reward-guided test-time scaling (TTS-MRO, k = 4) recovers at the same tokens per step, and how
the shipped RS- and RL-trained models do greedily; then the same for the shipped tiny Countdown
model. One table and one chart per task.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mro.config import Config
from mro.errors import MroError
from mro.eval.harness import EvalConfig, run_eval
from mro.eval.report import log_forwards_axis, print_table
from mro.io import check_output_folder
from mro.sampling.cache import CACHE_MODES
from mro.tasks import get_task


@dataclass
class DemoConfig(Config):
    """Run the embedded default end to end."""

    n: int = field(default=500, metadata={"help": "held-out puzzles", "min": 1, "max": 100_000})
    tokens_per_step: list[float] = field(default_factory=lambda: [1, 2, 3, 4, 6],
                                         metadata={"help": "tokens committed per step", "gt": 0})
    tts: bool = field(default=True, metadata={
        "help": "also decode with TTS-MRO (k=4, w=1, temperature 0.5) wherever a step commits more than one "
                "token (the case MRO is for; at one token per step the search costs the most and has no "
                "tokens committed together to choose between)"})
    out: str = field(default="runs/demo", metadata={
        "help": "output folder; each puzzle count and seed gets its own subfolder n<N>-seed<S>"})
    seed: int = field(default=0, metadata={"help": "decoding seed"})
    countdown: bool = field(default=True, metadata={
        "help": "also run the Countdown section (with the shipped countdown-tiny)"})
    countdown_n: int = field(default=200, metadata={"help": "held-out Countdown problems", "min": 1,
                                                    "max": 100_000})
    countdown_tokens_per_step: list[float] = field(default_factory=lambda: [1, 2, 4, 8], metadata={
        "help": "tokens committed per step in the Countdown section", "gt": 0})
    cache: str = field(default="none", metadata={
        "help": "KV cache of every decode: none | prefix | dual (docs/method.md section 2)", "choices": CACHE_MODES})
    cache_refresh: int = field(default=0, metadata={
        "help": "with --cache prefix|dual: also refill the cache with a full forward every this many steps inside a block (0 = only at block boundaries, Fast-dLLM's rule; 1 = every step, equal to none)", "min": 0})

    def __post_init__(self):
        super().__post_init__()
        check_output_folder(self.out)
        if not self.tokens_per_step or not self.countdown_tokens_per_step:
            raise MroError("tokens_per_step and countdown_tokens_per_step need at least one value")

    def folder(self) -> Path:
        """Where this demo's runs go: settings that change results get their own subfolder, so
        a rerun with other flags starts its own run (and one with the same flags resumes)."""
        return Path(self.out) / (f"n{self.n}-seed{self.seed}" + ("" if self.cache == "none" else f"-{self.cache}")
                                  + ("" if self.cache == "none" or not self.cache_refresh else f"-r{self.cache_refresh}"))


@dataclass(frozen=True)
class Section:
    """One task of the demo: its shipped model, problems and the trained models it adds."""

    model: str
    task: str
    task_options: str
    what: str  # the problems, in words
    trained: tuple[tuple[str, str], ...]  # (label, built-in name) of trained versions, shown when shipped


SUDOKU = Section("sudoku-tiny", "sudoku", "min_blanks=10,max_blanks=12",
                 "held-out 4x4 Sudoku with 10-12 blanks (several solutions allowed; any valid completion counts)",
                 (("RS", "sudoku-tiny-rs"), ("RL", "sudoku-tiny-rl")))
COUNTDOWN = Section("countdown-tiny", "countdown", "n_numbers=3,max_number=100,max_target=100",
                    "held-out 3-number Countdown (numbers 1-100, targets up to 100; any expression that hits "
                    "the target counts)", (("RS", "countdown-tiny-rs"), ("RL", "countdown-tiny-rl")))
NAMES = {"vanilla": "vanilla (greedy)", "TTS-MRO": "TTS-MRO k=4", "RS": "RS-trained (greedy)",
         "RL": "RL-trained (greedy)"}


def run_demo(cfg: DemoConfig, console: Console | None = None) -> dict:
    """The Sudoku section, then (when ``countdown-tiny`` is shipped) the Countdown one."""
    from mro.models.load import builtin_models

    if console is None:
        console = Console()
        console.soft_wrap = not console.is_terminal  # a log keeps each line whole
    out = {"sudoku": run_section(SUDOKU, cfg, cfg.n, cfg.tokens_per_step, cfg.folder(), console)}
    if cfg.countdown and COUNTDOWN.model in builtin_models():
        out["countdown"] = run_section(COUNTDOWN, cfg, cfg.countdown_n, cfg.countdown_tokens_per_step,
                                       cfg.folder() / f"countdown-n{cfg.countdown_n}", console)
    return out


def run_section(section: Section, cfg: DemoConfig, n: int, tokens_per_step: list[float], folder: Path,
                console: Console) -> dict:
    """Vanilla, TTS-MRO and every shipped trained model of one task: a table and one chart."""
    from mro.models.load import builtin_models

    start = time.perf_counter()
    console.print(f"[bold]mro demo[/]: shipped tiny diffusion LM ({section.model}) on {section.what}")
    common = dict(task=section.task, n=n, task_options=section.task_options, tokens_per_step=tokens_per_step,
                  seed=cfg.seed, batch_size=250, cache=cfg.cache,
                  cache_refresh=cfg.cache_refresh)
    runs = {"vanilla": run_eval(EvalConfig(model=section.model, **common, out=str(folder / "vanilla")))}
    several = [t for t in tokens_per_step if t > 1]
    if cfg.tts and several:
        console.print("decoding again with TTS-MRO (k=4 candidates per step, R_tv + R_ppl + R_q) ...")
        runs["TTS-MRO"] = run_eval(EvalConfig(model=section.model, **{**common, "tokens_per_step": several},
                                              out=str(folder / "tts-mro"), decode="tts-mro", temperature=0.5,
                                              k=4, w=1))
    shipped = builtin_models()
    for label, name in section.trained:
        if name in shipped:
            console.print(f"decoding greedily with {name} (the same model trained with MRO's {label}) ...")
            runs[label] = run_eval(EvalConfig(model=name, **common, out=str(folder / name)))
    metric = get_task(section.task).metrics[0]  # the solved rate: sudoku's "solved", countdown's "correct"
    table = Table(title=f"{section.task}: solved % vs tokens per step ({n} held-out problems)")
    cost = ("DLM forwards/problem", "tokens/forward")
    for col in ("tokens/step", "steps", *(NAMES[k] for k in runs),
                *(f"{c} (vanilla | TTS-MRO)" if "TTS-MRO" in runs else f"{c} (vanilla)" for c in cost)):
        table.add_column(col, justify="right")
    for r in runs["vanilla"]["results"]:
        same = {name: next((x for x in s["results"] if x["steps"] == r["steps"]), None) for name, s in runs.items()}
        row = [f"{r['tokens_per_step']:g}", str(r["steps"])]
        row += [f"{100 * x[metric]:.1f}" if x else "-" for x in same.values()]
        nfe, tpf = f"{r['nfe_per_example']:.0f}", f"{r['tokens_per_forward']:.2f}"
        if "TTS-MRO" in runs:
            tts = same["TTS-MRO"]
            nfe += f" | {tts['nfe_per_example']:.0f}" if tts else " | -"
            tpf += f" | {tts['tokens_per_forward']:.2f}" if tts else " | -"
        table.add_row(*row, nfe, tpf)
    print_table(console, table)
    plot = folder / "accuracy_vs_tokens_per_step.png"
    plot_runs(runs, NAMES, plot, f"{section.model} on {n} held-out problems", metric)
    console.print(f"plot (every decoding on one chart): {plot}")
    for name, s in runs.items():
        console.print(f"{name}: table {s['table']}")
    console.print(f"{section.task} section: {time.perf_counter() - start:.1f} s (wall, model loading included)")
    return runs


def plot_runs(runs: dict, names: dict, path: Path, title: str, metric: str = "solved") -> None:
    """Solved % against tokens per step and against DLM forwards per problem (the cost view,
    where the search's extra forwards show), one curve per decoding / model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mro.io import atomic_save

    fig, (ax, ax_f) = plt.subplots(1, 2, figsize=(12, 4.2))
    for key, s in runs.items():
        ys = [100 * r[metric] for r in s["results"]]
        ax.plot([r["tokens_per_step"] for r in s["results"]], ys, marker="o", label=names[key])
        ax_f.plot([r["nfe_per_example"] for r in s["results"]], ys, marker="o", label=names[key])
    ax.set_xlabel("tokens committed per step")
    ax_f.set_xlabel("DLM forwards per problem (log scale)")
    log_forwards_axis(ax_f)
    for a in (ax, ax_f):
        a.set_ylabel("solved %")
        a.grid(alpha=0.3)
        a.legend()
    fig.suptitle(title)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
