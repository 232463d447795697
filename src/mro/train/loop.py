"""The training loop shared by the tiny-model trainers: seeded, checkpointed, resumable.

Each step's batch must be a pure function of ``(seed, step)``; then a run that resumes from its
checkpoint (weights, optimizer, scheduler, step) continues exactly as if it had never stopped.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from mro.config import parse_options, to_dict
from mro.errors import MroError
from mro.models.tiny import TinyDLM


@dataclass
class TrainConfig:
    """Fields every tiny-model trainer shares."""

    task: str = field(default="sudoku", metadata={"help": "task whose training split is the data"})
    out: str = field(default="runs/train", metadata={"help": "output folder (model, checkpoint, log)"})
    steps: int = field(default=2000, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=128, metadata={"help": "problems per step"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW)"})
    warmup: int = field(default=100, metadata={"help": "linear warm-up steps"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=0, metadata={"help": "seed of data, masking and initialisation"})
    save_every: int = field(default=200, metadata={"help": "steps between checkpoints"})
    log_every: int = field(default=20, metadata={"help": "steps between log lines"})
    d_model: int = field(default=128, metadata={"help": "tiny model width"})
    n_layers: int = field(default=4, metadata={"help": "tiny model depth"})
    n_heads: int = field(default=4, metadata={"help": "attention heads"})
    d_ff: int = field(default=512, metadata={"help": "feed-forward width"})
    min_blanks: int = field(default=6, metadata={"help": "sudoku: fewest blanks in training puzzles"})
    max_blanks: int = field(default=12, metadata={"help": "sudoku: most blanks in training puzzles"})
    val_every: int = field(default=0, metadata={
        "help": "steps between validations (greedy solved % on val_n held-out test-split problems); 0 = none"})
    val_n: int = field(default=256, metadata={"help": "held-out problems of each validation"})
    val_steps: list[int] = field(default_factory=list, metadata={
        "help": "denoising steps of the validation decodes (empty = one token per step)"})
    task_options: str = field(default="", metadata={
        "help": "more options of the task's generator, e.g. countdown's n_numbers=3,max_number=100,layout=chain"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch's default)"})
    bf16: bool = field(default=False, metadata={
        "help": "run each training forward under bfloat16 autocast (weights and optimizer stay fp32); "
                "1.4-2x the steps per second on a CPU with bfloat16 support"})
    resume: bool = field(default=False, metadata={
        "help": "continue the run in --out from its checkpoint (without it an existing run is refused)"})

    def __post_init__(self):
        for name in ("steps", "batch_size", "save_every", "log_every", "d_model", "n_layers", "n_heads", "d_ff"):
            if getattr(self, name) < 1:
                raise MroError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise MroError(f"lr must be > 0, got {self.lr}")
        from mro.config import check_fields

        check_fields(self)  # finite numbers, seeds in range
        _check_generator_options(self)
        if any(type(v) is not int or v < 1 for v in self.val_steps):
            raise MroError(f"val_steps must be integers >= 1, got {self.val_steps}")
        for name in ("threads", "warmup", "min_blanks", "max_blanks", "val_every", "val_n"):
            if getattr(self, name) < 0:
                raise MroError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise MroError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.task == "sudoku" and not 0 <= self.min_blanks <= self.max_blanks <= 16:
            raise MroError(f"sudoku blanks need 0 <= min_blanks <= max_blanks <= 16, "
                           f"got {self.min_blanks} and {self.max_blanks}")

    def generator_options(self) -> dict:
        """Keyword options of the task's ``generate`` for the training data."""
        options = {"min_blanks": self.min_blanks, "max_blanks": self.max_blanks} if self.task == "sudoku" else {}
        return {**options, **parse_options(self.task_options)}


def _check_generator_options(cfg: TrainConfig) -> None:
    """An unknown or bad task option fails here in one line, not at the first training step."""
    from mro.tasks import get_task

    task = get_task(cfg.task)
    try:
        task.generate(1, seed=0, split="train", **cfg.generator_options())
    except (TypeError, ValueError) as e:
        raise MroError(f"bad task option for {task.name}: {' '.join(str(e).split())}") from None


#: fields that may change between a run and its resumption
_RUN_ONLY = ("out", "steps", "threads", "save_every", "log_every", "resume", "val_every", "val_n", "val_steps")


def _lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


def train(cfg: TrainConfig, model: TinyDLM, step_loss: Callable[[int], torch.Tensor], desc: str,
          validate: Callable[[], dict] | None = None) -> Path:
    """Optimise ``step_loss(step)`` for ``cfg.steps`` steps; save the model.

    With ``validate`` and ``cfg.val_every``, every ``val_every`` steps (and at the end) the log
    gets a line ``{"step", "val": validate(), "seconds"}``.

    ``--out`` is locked for the run. A folder that already holds a run is refused unless
    ``resume`` is set; then training continues from its checkpoint exactly (weights, optimizer,
    scheduler, step, running loss) and the log keeps each step once.
    """
    from mro.io import OutputLock, atomic_save, atomic_write_json

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    with OutputLock(cfg.out) as out:
        ckpt_path = out / "checkpoint.pt"
        log_path = out / "train_log.jsonl"
        opt = torch.optim.AdamW(model.module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
        start, running = 0, None
        if ckpt_path.is_file() and not cfg.resume:
            raise MroError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
        if cfg.resume and not ckpt_path.is_file():
            raise MroError(f"--resume: {out} holds no checkpoint to continue")
        if cfg.resume:
            try:
                state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
            except Exception as e:  # truncated or foreign file
                raise MroError(f"cannot resume from {ckpt_path}: damaged or not a checkpoint "
                               f"({type(e).__name__})") from None
            # a field added since the checkpoint was written counts as its default there
            defaults = {f.name: f.default_factory() if f.default_factory is not MISSING else f.default
                        for f in fields(cfg)}
            same = {k: v for k, v in {**defaults, **state["config"]}.items() if k not in _RUN_ONLY}
            if same != {k: v for k, v in to_dict(cfg).items() if k not in _RUN_ONLY}:
                raise MroError(f"{ckpt_path} was written with another config; use a new --out or delete it")
            model.module.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start, running = state["step"], state.get("running")
            if log_path.is_file():  # the steps after the checkpoint are redone: keep each step once
                kept = [line for line in log_path.read_text().splitlines()
                        if line.strip().startswith("{") and json.loads(line).get("step", 0) <= start]
                log_path.write_text("".join(line + "\n" for line in kept))
        model.module.train()
        t0 = time.time()
        bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=desc, unit="step")
        for step in bar:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                loss = step_loss(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.module.parameters(), 1.0)
            opt.step()
            sched.step()
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
            bar.set_postfix(loss=f"{running:.4f}")
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                with log_path.open("a") as f:
                    f.write(json.dumps({"step": done, "loss": round(running, 5), "lr": sched.get_last_lr()[0],
                                        "seconds": round(time.time() - t0, 1)}) + "\n")
            if validate is not None and cfg.val_every and (done % cfg.val_every == 0 or done == cfg.steps):
                model.module.eval()
                val = validate()
                model.module.train()
                bar.set_postfix(loss=f"{running:.4f}", val=" ".join(f"{v:.3f}" for v in val.values()))
                with log_path.open("a") as f:
                    f.write(json.dumps({"step": done, "val": val, "seconds": round(time.time() - t0, 1)}) + "\n")
            if done % cfg.save_every == 0 or done == cfg.steps:
                state = {"model": model.module.state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict(), "step": done, "running": running, "config": to_dict(cfg)}
                atomic_save(ckpt_path, lambda tmp: torch.save(state, tmp))
        model.module.eval()
        model.task = cfg.task
        model.save(out)
        atomic_write_json(out / "train_config.json", to_dict(cfg))
    return out
