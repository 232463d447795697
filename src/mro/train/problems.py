"""What the trainers that learn from a task's problems share (RS, RL, and SFT's validation): the
problem stream, greedy validation at the training step counts, and the config of RS and RL
(docs/method.md sections 6 and 7).

Problems of update ``u`` are a pure function of ``(seed, u)``, so a resumed run sees the same.
Validation problems come from the generator's held-out split with their own seed, so they are
never training problems; with ``--data`` the last ``val_n`` rows of the file are held out.
Prompts are laid out by :func:`mro.problems.encode`, as ``mro eval`` lays them out; a model that
does not fit the task or the cache mode, or a step count above the response length, is refused
when the model loads (:func:`check_run`), before any collection, rollout or validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from mro.errors import MroError
from mro.models.base import DiffusionLM
from mro.problems import check_steps, encode
from mro.sampling import DecodeConfig, generate
from mro.sampling.cache import CACHE_MODES, check_model_caches
from mro.tasks import get_task
from mro.tasks.base import Example, Task
from mro.train.config import ModelSettings, Plan, TrainerConfig, includes
from mro.train.defaults import fill_task_defaults, task_default


@dataclass
@includes(ModelSettings)
class RunConfig(TrainerConfig):
    """The fields of the trainers that start from a model and learn from a task's problems (RS, RL)."""

    task: str = field(default="sudoku", metadata={"help": "task whose training split gives the prompts"})
    task_options: str | None = field(default=None, metadata=task_default(
        "generator options as k=v,k=v (the README's settings: sudoku min_blanks=10,max_blanks=12, countdown "
        "n_numbers=3,max_number=100,max_target=100; other tasks their generator's defaults)"))
    data: str | None = field(default=None, metadata={
        "help": "training problems from a file instead of the generator (cycled in order)"})
    protocol: str = field(default="tiny", metadata={"help": "prompt layout: tiny (built-in) | d1 | mro",
                                                    "choices": ("tiny", "d1", "mro")})
    gen_length: int | None = field(default=None, metadata={
        "help": "response length (default: the task's tiny layout)", "min": 1})
    block_length: int | None = field(default=None, metadata={"help": "sampler block length (default: gen_length)",
                                                             "min": 1})
    cache: str = field(default="none", metadata={
        "help": "KV cache of the RS collection and the RL rollouts: none | prefix | dual (docs/method.md section 2; "
                "RL recomputes log-probabilities without it and logs the gap; validation never caches)",
        "choices": CACHE_MODES})
    cache_refresh: int = field(default=0, metadata={
        "help": "with --cache prefix|dual: also refill the cache with a full forward every this many steps inside a block (0 = only at block boundaries, Fast-dLLM's rule; 1 = every step, equal to none)", "min": 0})
    val_every: int | None = field(default=None, metadata=task_default("updates between validations (and checkpoints)",
                                                                      min=1))
    val_steps: list[int] | None = field(default=None, metadata=task_default(
        "step counts validated (greedy); the score that picks the best model is their mean", min=1))
    lr: float | None = field(default=None, metadata=task_default("peak learning rate (AdamW)", gt=0))
    lr_schedule: str | None = field(default=None, metadata=task_default(
        "after warm-up: constant | cosine (down to lr/10 at the last update)", choices=("constant", "cosine")))

    #: the ``mro train`` verb whose per-task defaults fill this config (mro.train.defaults)
    VERB = ""

    def __post_init__(self):
        fill_task_defaults(self, self.VERB, self.task)  # before the checks: they see the values used
        super().__post_init__()
        if self.task_options is None:
            self.task_options = get_task(self.task).default_options
        if not self.val_steps:
            raise MroError("val_steps must name at least one step count")

    def plan(self) -> Plan:
        return Plan(self.updates, 1, self.val_every)

    def step_counts(self) -> dict[str, list[int]]:
        """Every step count the run decodes at, by setting: ``val_steps``, RL's ``steps``, RS's
        ``collect_steps`` (not when a given ``dataset`` replaces the collection)."""
        counts = {"val_steps": list(self.val_steps)}
        if isinstance(getattr(self, "steps", None), list):
            counts["steps"] = list(self.steps)
        if getattr(self, "collect_steps", None) and not getattr(self, "dataset", None):
            counts["collect_steps"] = [self.collect_steps]
        return counts


class ProblemSource:
    """Training and validation problems: the task's generator (training split) or a data file."""

    def __init__(self, task: Task, options: dict, seed: int, val_n: int, data: str | None = None,
                 val_seed: int | None = None):
        self.task, self.options, self.seed, self.val_n = task, options, seed, val_n
        self.val_seed = 8_191 + seed if val_seed is None else val_seed
        self.rows: list[Example] | None = None
        if data:
            rows = task.load(data)
            if len(rows) <= val_n:
                raise MroError(f"{data} has {len(rows)} problems; need more than val_n={val_n} "
                               "(the last val_n are held out for validation)")
            self.rows, self.val_rows = rows[:-val_n], rows[-val_n:]

    def batch(self, update: int, n: int) -> list[Example]:
        if self.rows is not None:
            start = (update * n) % len(self.rows)
            return [self.rows[(start + i) % len(self.rows)] for i in range(n)]
        try:
            return self.task.generate(n, seed=self.seed * 1_000_003 + update, split="train", **self.options)
        except (TypeError, ValueError) as e:
            raise MroError(f"bad task option for {self.task.name}: {' '.join(str(e).split())}") from None

    def validation(self) -> list[Example]:
        if self.rows is not None:
            return self.val_rows
        return self.task.generate(self.val_n, seed=self.val_seed, split="test", **self.options)


def check_run(model: DiffusionLM, task: Task, cfg: RunConfig) -> int:
    """Refuse, before anything is decoded, a run the model cannot decode: ``--cache`` on a model
    without a KV cache, a model and task that do not fit (the refusals of
    :func:`mro.problems.encode`: a tiny model trained on another task, a missing ``gen_length``),
    or step counts (:meth:`RunConfig.step_counts`) above the response positions
    (:func:`mro.problems.check_steps`, ``mro eval``'s refusal). Returns the response length."""
    check_model_caches(model, cfg.cache)
    gen_length = encode(task, model, [], cfg.protocol, cfg.gen_length).gen_length
    for name, steps in cfg.step_counts().items():
        check_steps(steps, gen_length, name)
    return gen_length


def problem_source(task: Task, cfg: RunConfig) -> ProblemSource:
    from mro.config import parse_options

    return ProblemSource(task, parse_options(cfg.task_options) if not cfg.data else {}, cfg.seed, cfg.val_n, cfg.data,
                         cfg.val_seed)


def decode_for_training(gen_length: int, steps: int, temperature: float, block_length: int | None,
                        cache: str = "none", cache_refresh: int = 0) -> DecodeConfig:
    """The sampler settings of a training-time decode (collection, rollouts, validation)."""
    return DecodeConfig(gen_length=gen_length, steps=steps, block_length=block_length or gen_length,
                        temperature=temperature, cache=cache, cache_refresh=cache_refresh)


@torch.no_grad()
def validate(model: DiffusionLM, task: Task, examples: Sequence[Example], val_steps: Sequence[int],
             protocol: str = "tiny", gen_length: int | None = None, block_length: int | None = None,
             rank: int = 0, world: int = 1, reduce=None, batch_size: int = 256) -> dict[int, float]:
    """Greedy solved rate (the task's primary metric) at each of ``val_steps``; each process
    decodes its share of ``examples``, ``reduce`` (sum over processes) joins them."""
    from mro.rewards.perplexity import state_texts

    mine = list(examples)[rank::world]
    out = {}
    for steps in val_steps:
        total = torch.zeros(2, dtype=torch.float64)
        for lo in range(0, len(mine), batch_size):
            chunk = mine[lo:lo + batch_size]
            enc = encode(task, model, chunk, protocol, gen_length)
            traj = generate(model, enc.prompts, decode_for_training(enc.gen_length, steps, 0.0, block_length),
                            responses=enc.responses)
            texts = state_texts(model, traj, traj.steps_done)
            total[0] += sum(task.score(ex, t)[task.metrics[0]] for ex, t in zip(chunk, texts))
            total[1] += len(chunk)
        if reduce is not None:
            total = reduce(total.to(model.device)).cpu()
        out[steps] = float(total[0] / total[1].clamp_min(1))
    return out


def validate_run(trainer, task: Task, examples: Sequence[Example], cfg) -> tuple[dict, float]:
    """The spine's validation of a task trainer: solved rates keyed by step count, score their mean."""
    acc = trainer.acc
    solved = validate(trainer.model, task, examples, cfg.val_steps, cfg.protocol, cfg.gen_length, cfg.block_length,
                      acc.process_index, acc.num_processes, reduce=lambda x: acc.reduce(x, "sum"))
    return {"solved": {str(k): v for k, v in solved.items()}}, sum(solved.values()) / len(solved)
