"""The settings the training spine reads (docs/architecture.md), and how a trainer's config takes
in the fields of another config by composition.

Every trainer config is one chain, ``Config -> TrainerConfig -> <trainer>``; settings that belong
to another layer (the model to load, the rewards, the search) are *included*: their fields are
copied into the trainer's flat config (so flags and YAML keys stay flat, ``--rewards``, ``--k``),
and :func:`part` builds the other layer's own config object from them, with that layer's checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

from mro.config import Config
from mro.errors import MroError
from mro.models.load import REMOTE_CODE_HELP


def includes(*parts):
    """Class decorator (put it under ``@dataclass``): add every field of each ``part`` config that
    the class does not declare itself, with its default and metadata."""
    def wrap(cls):
        own = cls.__dict__.get("__annotations__", {})
        inherited = {name for base in cls.__mro__[1:] for name in getattr(base, "__dataclass_fields__", {})}
        for part_cls in parts:
            for f in dataclasses.fields(part_cls):
                if f.name in own or f.name in inherited or not f.init:
                    continue
                own[f.name] = f.type
                kwargs = {"default": f.default} if f.default is not dataclasses.MISSING else {
                    "default_factory": f.default_factory}
                setattr(cls, f.name, field(metadata=f.metadata, **kwargs))
        cls.__annotations__ = own
        return cls
    return wrap


def part(cfg, part_cls):
    """The ``part_cls`` config made of ``cfg``'s fields of that name (its own checks run)."""
    return part_cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(part_cls) if f.init})


class Plan(NamedTuple):
    """The cadence of a run: optimizer updates, updates per log line, updates per checkpoint."""

    updates: int
    log_every: int
    save_every: int


@dataclass
class TrainerConfig(Config):
    """What the spine itself reads: run folder, optimizer and schedule, validation, budget."""

    #: fields that may differ between a run and its resumption (not a dataclass field: no annotation)
    RUN_ONLY = ("out", "resume", "updates", "max_minutes", "threads", "progress", "device")

    out: str = field(default="runs/train", metadata={"help": "run folder"})
    resume: bool = field(default=False, metadata={
        "help": "continue the run in --out from its last checkpoint (without it an existing run is refused)"})
    seed: int = field(default=0, metadata={"help": "seed of data, masking, rollouts and initialisation"})
    lr: float = field(default=1e-4, metadata={"help": "peak learning rate (AdamW)", "gt": 0})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay", "min": 0})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2", "gt": 0, "lt": 1})
    warmup: int = field(default=0, metadata={"help": "linear warm-up updates", "min": 0})
    lr_schedule: str = field(default="constant", metadata={
        "help": "after warm-up: constant | cosine (down to lr/10 at the last update; the update count then "
                "changes results)", "choices": ("constant", "cosine")})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0 = off)", "min": 0})
    val_every: int = field(default=25, metadata={"help": "updates between validations (0 = none)", "min": 0})
    val_n: int = field(default=256, metadata={"help": "held-out validation problems", "min": 1})
    val_seed: int | None = field(default=None, metadata={
        "help": "seed of the generated validation problems (None = 8191 + seed); a run that starts from a model "
                "an earlier run chose at the same seed should take another, or it validates on the problems that "
                "choice was made on"})
    val_steps: list[int] = field(default_factory=lambda: [2, 3, 4], metadata={
        "help": "step counts validated (greedy); the score that picks the best model is their mean", "min": 1})
    max_minutes: float | None = field(default=None, metadata={
        "help": "stop after this many CPU-minutes of this process, summed over resumptions (None = no limit)",
        "gt": 0})
    threads: int = field(default=0, metadata={
        "help": "torch CPU threads (0 = auto: one for a tiny model on CPU, torch's default otherwise)", "min": 0})
    device: str = field(default="auto", metadata={
        "help": "cpu, cuda or auto (under accelerate: its device)", "choices": ("auto", "cpu", "cuda")})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self):
        super().__post_init__()
        if not self.out:
            raise MroError("out must name a folder")

    def run_only(self) -> set[str]:
        """Fields a resumption may change; the update count is not one under a cosine schedule."""
        return set(self.RUN_ONLY) - ({"updates"} if self.lr_schedule == "cosine" else set())

    def plan(self) -> Plan:
        """Updates, log and checkpoint cadence, from the trainer's own fields (``--steps`` of SFT,
        ``--updates`` of RS and RL)."""
        raise NotImplementedError


@dataclass
class ModelSettings(Config):
    """The model a trainer starts from and how it trains (included by the trainers that load one)."""

    model: str = field(default="sudoku-tiny", metadata={
        "help": "model to train: built-in name, tiny-model folder, hub id or transformers folder"})
    dtype: str = field(default="auto", metadata={
        "help": "bf16, fp16, fp32 or auto (bf16 on CUDA, else fp32)", "choices": ("auto", "bf16", "fp16", "fp32")})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank for Hugging Face models (0 = full fine-tuning)",
                                             "min": 0})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha", "min": 0})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout", "min": 0, "max": 1})
    lora_targets: str = field(default="all-linear", metadata={
        "help": "LoRA target modules: comma list of module names, or all-linear"})
    grad_checkpointing: bool = field(default=False, metadata={
        "help": "gradient checkpointing (Hugging Face models that support it)"})
    remote_code: bool = field(default=False, metadata={"help": REMOTE_CODE_HELP})
