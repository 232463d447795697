"""The settings of the trainers of the built-in tiny models on a task's generated problems
(``mro train sft`` and ``mro train ar``; docs/method.md sections 1 and 9), on top of the spine's.

Every batch is a pure function of ``(seed, step)``: fresh problems of the task's training split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from mro.config import parse_options
from mro.errors import MroError
from mro.models.tiny import TinyDLM
from mro.tasks import get_task
from mro.train.config import Plan, TrainerConfig


@dataclass
class TinyRunConfig(TrainerConfig):
    """Fields every trainer of a built-in tiny model on generated problems shares."""

    RUN_ONLY = ("out", "steps", "threads", "save_every", "log_every", "resume", "val_every", "val_n", "val_steps",
                "max_minutes", "progress", "device")

    task: str = field(default="sudoku", metadata={"help": "task whose training split is the data"})
    out: str = field(default="runs/train", metadata={"help": "output folder (run folder: model, checkpoint, log)"})
    steps: int = field(default=2000, metadata={"help": "optimizer steps", "min": 1})
    batch_size: int = field(default=128, metadata={"help": "problems per step (over all processes)", "min": 1})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW)", "gt": 0})
    warmup: int = field(default=100, metadata={"help": "linear warm-up steps", "min": 0})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay", "min": 0})
    adam_beta2: float = field(default=0.98, metadata={"help": "AdamW beta2", "gt": 0, "lt": 1})
    lr_schedule: str = field(default="cosine", metadata={
        "help": "after warm-up: constant | cosine (down to lr/10 at --steps)", "choices": ("constant", "cosine")})
    save_every: int = field(default=200, metadata={"help": "steps between checkpoints", "min": 1})
    log_every: int = field(default=20, metadata={"help": "steps between log lines (each the mean of its steps)",
                                                 "min": 1})
    d_model: int = field(default=128, metadata={"help": "tiny model width", "min": 1})
    n_layers: int = field(default=4, metadata={"help": "tiny model depth", "min": 1})
    n_heads: int = field(default=4, metadata={"help": "attention heads", "min": 1})
    d_ff: int = field(default=512, metadata={"help": "feed-forward width", "min": 1})
    min_blanks: int = field(default=6, metadata={"help": "sudoku: fewest blanks in training puzzles", "min": 0})
    max_blanks: int = field(default=12, metadata={"help": "sudoku: most blanks in training puzzles", "min": 0})
    val_every: int = field(default=0, metadata={
        "help": "steps between validations (greedy solved % on val_n held-out test-split problems); 0 = none",
        "min": 0})
    val_steps: list[int] = field(default_factory=list, metadata={
        "help": "denoising steps of the validation decodes (empty = one token per step)", "min": 1})
    task_options: str = field(default="", metadata={
        "help": "more options of the task's generator, e.g. countdown's n_numbers=3,max_number=100,layout=chain"})
    bf16: bool = field(default=False, metadata={
        "help": "run each training forward under bfloat16 autocast (weights and optimizer stay fp32); "
                "1.4-2x the steps per second on a CPU with bfloat16 support"})

    def __post_init__(self):
        super().__post_init__()
        if self.task == "sudoku" and not self.min_blanks <= self.max_blanks <= 16:
            raise MroError(f"sudoku blanks need 0 <= min_blanks <= max_blanks <= 16, "
                           f"got {self.min_blanks} and {self.max_blanks}")
        task = get_task(self.task)
        try:  # an unknown or bad task option fails here in one line, not at the first training step
            task.generate(1, seed=0, split="train", **self.generator_options())
        except (TypeError, ValueError) as e:
            raise MroError(f"bad task option for {task.name}: {' '.join(str(e).split())}") from None

    def plan(self) -> Plan:
        return Plan(self.steps, self.log_every, self.save_every)

    def generator_options(self) -> dict:
        """Keyword options of the task's ``generate`` for the training data."""
        options = {"min_blanks": self.min_blanks, "max_blanks": self.max_blanks} if self.task == "sudoku" else {}
        return {**options, **parse_options(self.task_options)}

    def examples(self, task, step: int):
        """The problems of ``step`` (deterministic in seed and step)."""
        return task.generate(self.batch_size, seed=self.seed * 1_000_003 + step, split="train",
                             **self.generator_options())


def create_tiny(cfg: TinyRunConfig, device, causal: bool = False) -> TinyDLM:
    """A freshly initialised tiny model (seeded by ``cfg.seed``), in training mode on ``device``."""
    torch.manual_seed(cfg.seed)
    model = TinyDLM.create(name=Path(cfg.out).name, d_model=cfg.d_model, n_layers=cfg.n_layers,
                           n_heads=cfg.n_heads, d_ff=cfg.d_ff, causal=causal)
    model.module.to(device).train()
    model.task = cfg.task
    return model
