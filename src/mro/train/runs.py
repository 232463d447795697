"""What every MRO trainer run shares (docs/method.md sections 6 and 7): the run folder, explicit
resume, atomic checkpoints through accelerate, validation at the training step counts, the JSONL
log and the learning-curve plot.

A run folder holds ``run.json`` (the config that made it), ``log.jsonl`` (one line per update and
per validation, each written once), ``checkpoint/`` (weights, optimizer, scheduler and RNG state,
written by ``accelerate`` and swapped in atomically), ``best/`` (the model with the best
validation score, loadable with ``--model``), ``final/`` (the model where the run stopped) and
``curves.png``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from mro.config import parse_options, to_dict
from mro.errors import MroError
from mro.io import atomic_write_json, atomic_write_text, read_jsonl
from mro.models.base import DiffusionLM
from mro.sampling import DecodeConfig, generate
from mro.tasks import get_task
from mro.tasks.base import Example, Task, tiny_batch
from mro.train.setup import save_model

#: fields that may differ between a run and its resumption (they do not change what is computed)
RUN_ONLY = ("out", "resume", "updates", "max_minutes", "threads", "progress", "device")


@dataclass
class RunConfig:
    """Fields every MRO trainer shares: the model, the data, the run folder and its bookkeeping."""

    model: str = field(default="sudoku-tiny", metadata={
        "help": "model to train: built-in name, tiny-model folder, hub id or transformers folder"})
    task: str = field(default="sudoku", metadata={"help": "task whose training split gives the prompts"})
    task_options: str | None = field(default=None, metadata={
        "help": "generator options as k=v,k=v (default: sudoku min_blanks=10,max_blanks=12, the README's "
                "hard setting; other tasks their generator's defaults)"})
    data: str | None = field(default=None, metadata={
        "help": "training problems from a file instead of the generator (cycled in order)"})
    protocol: str = field(default="tiny", metadata={"help": "prompt layout: tiny (built-in) | d1 | mro"})
    gen_length: int | None = field(default=None, metadata={"help": "response length (default: the task's tiny layout)"})
    block_length: int | None = field(default=None, metadata={"help": "sampler block length (default: gen_length)"})
    out: str = field(default="runs/train", metadata={"help": "run folder"})
    resume: bool = field(default=False, metadata={
        "help": "continue the run in --out from its last checkpoint (without it an existing run is refused)"})
    lr: float = field(default=1e-4, metadata={"help": "learning rate (AdamW)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup: int = field(default=0, metadata={"help": "linear warm-up updates"})
    lr_schedule: str = field(default="constant", metadata={
        "help": "after warm-up: constant | cosine (down to lr/10 at --updates; --updates then changes results)"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0 = off)"})
    val_every: int = field(default=25, metadata={"help": "updates between validations (and checkpoints)"})
    val_n: int = field(default=256, metadata={"help": "held-out validation problems"})
    val_steps: list[int] = field(default_factory=lambda: [2, 3, 4], metadata={
        "help": "step counts validated (greedy); the score that picks the best model is their mean"})
    seed: int = field(default=0, metadata={"help": "seed of data, rollouts and group sampling"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch's default)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto (under accelerate: its device)"})
    dtype: str = field(default="auto", metadata={"help": "bf16, fp16, fp32 or auto (bf16 on CUDA, else fp32)"})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank for Hugging Face models (0 = full fine-tuning)"})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    lora_targets: str = field(default="all-linear", metadata={
        "help": "LoRA target modules: comma list of module names, or all-linear"})
    grad_checkpointing: bool = field(default=False, metadata={
        "help": "gradient checkpointing (Hugging Face models that support it)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self):
        if self.lr_schedule not in ("constant", "cosine"):
            raise MroError(f"lr_schedule must be constant or cosine, got {self.lr_schedule!r}")
        if self.task_options is None:
            self.task_options = get_task(self.task).default_options
        for name in ("val_every", "val_n"):
            if getattr(self, name) < 1:
                raise MroError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise MroError(f"lr must be a finite number > 0, got {self.lr}")
        for name in ("weight_decay", "max_grad_norm", "lora_alpha", "lora_dropout"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise MroError(f"{name} must be a finite number >= 0, got {v}")
        for name in ("warmup", "threads", "lora_r"):
            if getattr(self, name) < 0:
                raise MroError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.val_steps or any(s < 1 for s in self.val_steps):
            raise MroError(f"val_steps must be step counts >= 1, got {self.val_steps}")
        if not self.out:
            raise MroError("out must name a folder")


def open_run(cfg, accelerator=None) -> Path:
    """Create the run folder, or check that ``--resume`` continues the same run.

    Without ``--resume`` a folder that already holds a run is refused; with it, every field that
    changes what is computed must equal the saved run's. Under several processes the first one
    checks and creates; the others wait for it and share its verdict.
    """
    if accelerator is None or accelerator.num_processes == 1:
        return _open_run(cfg)
    from accelerate.utils import broadcast_object_list

    verdict = [None]
    if accelerator.is_main_process:
        try:
            _open_run(cfg)
        except MroError as e:
            verdict = [str(e)]
    verdict = broadcast_object_list(verdict)
    if verdict[0] is not None:
        raise MroError(verdict[0])
    return Path(cfg.out)


def _open_run(cfg) -> Path:
    out = Path(cfg.out)
    saved = out / "run.json"
    if out.exists() and not out.is_dir():
        raise MroError(f"--out {out} is a file, not a folder")
    if saved.is_file():
        if not cfg.resume:
            raise MroError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        try:
            old = json.loads(saved.read_text())
        except (ValueError, UnicodeDecodeError):
            raise MroError(f"{saved} is not a readable run record; delete {out} to start over") from None
        new = to_dict(cfg)
        free = RUN_ONLY if new.get("lr_schedule") != "cosine" else tuple(k for k in RUN_ONLY if k != "updates")
        diff = sorted(k for k in set(old) | set(new) if k not in free and old.get(k) != new.get(k))
        if diff:
            k = diff[0]
            raise MroError(f"--resume: {out} was run with {k}={old.get(k)!r}, not {new.get(k)!r}; "
                           "use the same settings or another --out")
        return out
    if cfg.resume and not saved.is_file():
        raise MroError(f"--resume: {out} holds no run to continue")
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(saved, to_dict(cfg))
    except OSError as e:
        raise MroError(f"cannot write to --out {out}: {e.strerror}") from None
    return out


@contextlib.contextmanager
def locked(out: str):
    """Hold the output-folder lock for a run (the first process of a launch holds it for all)."""
    from mro.io import OutputLock

    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    with OutputLock(out):
        yield


def append_log(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(path: Path, until_update: int | None = None) -> list[dict]:
    """The log's records (a torn last line is dropped); with ``until_update``, only those up to it."""
    return [r for r in read_jsonl(path, warn=False) if until_update is None or r.get("update", 0) <= until_update]


def truncate_log(path: Path, until_update: int) -> None:
    """Keep the records up to ``until_update``: a resumed run writes each update once."""
    if path.is_file():
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in read_log(path, until_update)))


def save_checkpoint(accelerator, out: Path, state: dict) -> None:
    """Weights, optimizer, scheduler and RNG state (``accelerator.save_state``) plus ``state``,
    written to a fresh folder and swapped in, so a kill at any moment leaves a whole checkpoint."""
    final, tmp, old = out / "checkpoint", out / "checkpoint.tmp", out / "checkpoint.old"
    if accelerator.is_main_process:  # the folder exists before any process writes into it
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=False)
    accelerator.wait_for_everyone()  # every process's RNG state is written before the swap
    if accelerator.is_main_process:
        atomic_write_json(tmp / "trainer_state.json", state)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def has_checkpoint(out: Path) -> bool:
    return any((out / name / "trainer_state.json").is_file() for name in ("checkpoint", "checkpoint.old"))


def load_checkpoint(accelerator, out: Path) -> dict | None:
    """Restore the last checkpoint of ``out`` (None when the run has none yet)."""
    final, old = out / "checkpoint", out / "checkpoint.old"
    if not final.is_dir() and old.is_dir():  # killed between the two renames
        final = old
    state_file = final / "trainer_state.json"
    if not state_file.is_file():
        return None
    try:
        state = json.loads(state_file.read_text())
        accelerator.load_state(str(final))
    except Exception as e:  # a truncated or foreign checkpoint: one line, not a traceback
        raise MroError(f"cannot resume from {final}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    return state


class Tracker:
    """The bookkeeping of one trainer run: where it resumes, its clocks, its log, validation with
    the best model kept, checkpoints, and the final model and plot."""

    def __init__(self, cfg, accelerator, out: Path, model: DiffusionLM, prepared, task: Task,
                 val_examples: Sequence[Example]):
        self.cfg, self.acc, self.out, self.model, self.prepared = cfg, accelerator, out, model, prepared
        self.task, self.val_examples = task, list(val_examples)
        state = load_checkpoint(accelerator, out) if cfg.resume else None
        self.start = state["update"] if state else 0
        self.best = state["best"] if state else -1.0
        self._used = (state["cpu_s"], state["wall_s"]) if state else (0.0, 0.0)
        self._t0 = (cpu_seconds(), time.time())
        self.log_path = out / "log.jsonl"
        if accelerator.is_main_process:
            truncate_log(self.log_path, self.start)

    def elapsed(self) -> tuple[float, float]:
        """CPU and wall seconds of the run so far, over every resumption."""
        return self._used[0] + cpu_seconds() - self._t0[0], self._used[1] + time.time() - self._t0[1]

    def budget_left(self) -> bool:
        """``max_minutes`` counts CPU time of this process (all its threads) across resumptions."""
        return self.cfg.max_minutes is None or self.elapsed()[0] < 60 * self.cfg.max_minutes

    def log(self, record: dict) -> None:
        cpu_s, wall_s = self.elapsed()
        if self.acc.is_main_process:
            append_log(self.log_path, {**record, "cpu_min": round(cpu_s / 60, 3), "wall_min": round(wall_s / 60, 3)})

    def validate(self, update: int) -> None:
        """Validate, keep the model if it is the best so far, log, and checkpoint."""
        self.model.module.eval()
        solved = validate(self.model, self.task, self.val_examples, self.cfg, self.acc.process_index,
                          self.acc.num_processes, reduce=lambda x: self.acc.reduce(x, "sum"))
        score = sum(solved.values()) / len(solved)
        if score > self.best:
            self.best = score
            save_model(self.acc, self.model, self.prepared, self.out / "best")
        self.log({"kind": "val", "update": update, "solved": {str(k): v for k, v in solved.items()},
                  "score": score, "best": self.best})
        cpu_s, wall_s = self.elapsed()
        save_checkpoint(self.acc, self.out, {"update": update, "best": self.best, "cpu_s": cpu_s, "wall_s": wall_s})

    def finish(self, title: str) -> Path:
        """Validate where the run stopped (if it stopped between validations), save ``final/``, plot."""
        records = read_log(self.log_path)
        if records and records[-1].get("kind") == "train":
            self.validate(records[-1]["update"])
        save_model(self.acc, self.model, self.prepared, self.out / "final")
        if self.acc.is_main_process:
            plot_curves(self.log_path, self.out / "curves.png", title)
        return self.out / "best"


def cpu_seconds() -> float:
    return time.process_time()


# ---------------------------------------------------------------- data


class ProblemSource:
    """Training and validation problems: the task's generator (training split) or a data file.

    Problems of update ``u`` are a pure function of ``(seed, u)``, so a resumed run sees the same.
    Validation problems come from the generator's held-out split with their own seed, so they are
    never training problems; with ``--data`` the last ``val_n`` rows of the file are held out.
    """

    def __init__(self, task: Task, cfg):
        self.task, self.cfg = task, cfg
        self.options = parse_options(cfg.task_options) if not cfg.data else {}
        self.rows: list[Example] | None = None
        if cfg.data:
            rows = task.load(cfg.data)
            if len(rows) <= cfg.val_n:
                raise MroError(f"{cfg.data} has {len(rows)} problems; need more than val_n={cfg.val_n} "
                               "(the last val_n are held out for validation)")
            self.rows, self.val_rows = rows[:-cfg.val_n], rows[-cfg.val_n:]

    def batch(self, update: int, n: int) -> list[Example]:
        if self.rows is not None:
            start = (update * n) % len(self.rows)
            return [self.rows[(start + i) % len(self.rows)] for i in range(n)]
        try:
            return self.task.generate(n, seed=self.cfg.seed * 1_000_003 + update, split="train", **self.options)
        except TypeError as e:
            raise MroError(f"bad task option for {self.task.name}: {e}") from None

    def validation(self) -> list[Example]:
        if self.rows is not None:
            return self.val_rows
        return self.task.generate(self.cfg.val_n, seed=8_191 + self.cfg.seed, split="test", **self.options)


def encode(task: Task, model: DiffusionLM, examples: Sequence[Example], protocol: str,
           gen_length: int | None) -> tuple[list[list[int]], list[list[int]] | None, int]:
    """Prompt ids, optional pre-filled responses (tiny layout) and the response length."""
    from mro.models.tokenizer import CharTokenizer

    if protocol == "tiny":
        if not isinstance(model.tokenizer, CharTokenizer):
            raise MroError("protocol 'tiny' is for the built-in tiny models; use --protocol d1 or mro")
        prompts, responses = tiny_batch(task, list(examples), model.tokenizer)
        return prompts, responses, task.tiny_gen_length
    from mro.tasks.protocols import prompt_ids

    if gen_length is None:
        raise MroError(f"protocol {protocol!r} needs --gen-length (the response length in tokens)")
    return [prompt_ids(model, task, ex, protocol) for ex in examples], None, gen_length


def decode_settings(cfg, gen_length: int, steps: int, temperature: float) -> DecodeConfig:
    return DecodeConfig(gen_length=gen_length, steps=steps, block_length=cfg.block_length or gen_length,
                        temperature=temperature)


@dataclass
class ValSettings:
    """What :func:`validate` reads of a config, for callers without a RunConfig (the tiny layout)."""

    val_steps: list[int] = field(default_factory=list)
    protocol: str = "tiny"
    gen_length: int | None = None
    block_length: int | None = None


@torch.no_grad()
def validate(model: DiffusionLM, task: Task, examples: Sequence[Example], cfg, rank: int = 0, world: int = 1,
             batch_size: int = 256, reduce=None) -> dict[int, float]:
    """Greedy solved rate (the task's primary metric) at each of ``cfg.val_steps``; each process
    decodes its share, ``reduce`` (sum over processes) joins them."""
    from mro.rewards.perplexity import state_texts

    mine = list(examples)[rank::world]
    out = {}
    for steps in cfg.val_steps:
        total = torch.zeros(2, dtype=torch.float64)
        for lo in range(0, len(mine), batch_size):
            chunk = mine[lo:lo + batch_size]
            prompts, responses, gen_length = encode(task, model, chunk, cfg.protocol, cfg.gen_length)
            dc = decode_settings(cfg, gen_length, steps, 0.0)
            traj = generate(model, prompts, dc, responses=responses)
            texts = state_texts(model, traj, traj.steps_done)
            total[0] += sum(task.score(ex, t)[task.metrics[0]] for ex, t in zip(chunk, texts))
            total[1] += len(chunk)
        if reduce is not None:
            total = reduce(total.to(model.device)).cpu()
        out[steps] = float(total[0] / total[1].clamp_min(1))
    return out


def plot_curves(log_path: Path, png: Path, title: str) -> None:
    """Validation solved % and mean training reward against updates and against wall-clock minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    vals = [r for r in records if r.get("kind") == "val"]
    trains = [r for r in records if r.get("kind") == "train"]
    if not vals and not trains:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, x_key, label in ((axes[0], "update", "update"), (axes[1], "wall_min", "wall-clock minutes")):
        for steps in sorted({int(s) for r in vals for s in r["solved"]}):
            ax.plot([r[x_key] for r in vals], [100 * r["solved"][str(steps)] for r in vals], marker="o", ms=3,
                    label=f"val solved % @ {steps} steps")
        ax.set_xlabel(label)
        ax.set_ylabel("validation solved % (greedy)")
        ax.grid(alpha=0.3)
        if trains and "reward" in trains[0]:
            tw = ax.twinx()
            tw.plot([r[x_key] for r in trains], [r["reward"] for r in trains], color="grey", alpha=0.4, lw=0.8,
                    label="mean training reward")
            tw.set_ylabel("mean training reward")
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    tmp = png.with_name(png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, png)
