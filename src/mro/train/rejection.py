"""Rejection sampling with the multi-reward (docs/method.md section 6).

``mro train rs`` runs in two phases, both resumable:

1. **collect**: for each training problem, decode with a reward-guided search (``tts-mro`` with
   ``k`` candidates per segment, or ``best-of-n``) and keep the chosen trajectory when its
   quality reward passes (``keep: correct`` keeps only verified-correct answers, ``all`` keeps
   every one). Each kept trajectory is one JSONL line (prompt ids, response tokens, commit-step
   map, rewards), appended batch by batch, so an interrupted collection resumes where it stopped.
2. **fine-tune**: the masked-diffusion loss on 2 random consecutive steps of each trajectory:
   given the state before step ``t``, cross-entropy on the positions committed at ``t``
   (``target: transition``) or on every still-masked position against the final tokens
   (``target: final``); gradients accumulate step by step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from mro.errors import MroError
from mro.sampling.batch import layout
from mro.sampling.trajectory import PREFILLED
from mro.search import SearchConfig
from mro.tasks import get_task
from mro.train import rs_data
from mro.train.checkpoint import has_checkpoint
from mro.train.config import includes, part
from mro.train.defaults import task_default
from mro.train.problems import RunConfig, problem_source, validate_run
from mro.train.setup import load_trainable
from mro.train.trainer import Plugin, Trainer

COLLECTORS = ("tts-mro", "best-of-n")
TARGETS = ("transition", "final")


@dataclass
@includes(SearchConfig)
class RSConfig(RunConfig):
    """Collect high-reward trajectories with TTS-MRO, then fine-tune on them (docs/method.md section 6)."""

    VERB = "rs"

    collect: str | None = field(default=None, metadata=task_default(
        "search that picks the trajectories: tts-mro | best-of-n", choices=COLLECTORS))
    problems: int | None = field(default=None, metadata=task_default("training problems to decode in the collection",
                                                                     min=1))
    collect_steps: int | None = field(default=None, metadata=task_default("denoising steps of the collection decode",
                                                                          min=1))
    collect_temperature: float | None = field(default=None, metadata=task_default(
        "sampling temperature of the collection (> 0: a search needs diverse candidates)", gt=0))
    collect_batch: int | None = field(default=None, metadata=task_default(
        "problems per collection batch (one JSONL append)", min=1))
    keep: str = field(default="correct", metadata={
        "help": "which trajectories are kept: correct (verified against the reference) | all (no reference "
                "used: label-free)", "choices": ("correct", "all")})
    dataset: str | None = field(default=None, metadata={
        "help": "fine-tune on this RS JSONL instead of collecting (default: <out>/rs_data.jsonl)"})
    target: str | None = field(default=None, metadata=task_default(
        "transition (CE on the positions committed at the step) | final (every masked position vs the final "
        "tokens)", choices=TARGETS))
    updates: int | None = field(default=None, metadata=task_default("fine-tuning optimizer steps", min=1))
    batch_size: int | None = field(default=None, metadata=task_default(
        "trajectories per fine-tuning step (2 steps each)", min=1))
    k: int | None = field(default=None, metadata=task_default(
        "candidates per segment (tts-*) or responses (best-of-n); each is a copy of the batch", min=1, max=256))
    select: str | None = field(default=None, metadata=task_default("best-of-n choice: vote (majority) | reward",
                                                                   choices=("vote", "reward")))
    rewards: str | None = field(default=None, metadata=task_default(
        "reward terms and weights of the search, e.g. 'tv,ppl,q' or 'tv=1,q=0.5' (unlisted = off)"))
    val_n: int | None = field(default=None, metadata=task_default("held-out validation problems", min=1))
    max_minutes: float | None = field(default=None, metadata=task_default(
        "stop after this many CPU-minutes of this process, summed over resumptions (to lift the recipe's limit, "
        "give a large number)", gt=0))

    def __post_init__(self):
        super().__post_init__()
        search = part(self, SearchConfig)  # the search settings, checked as the search layer checks them
        self.greedy_candidate = search.greedy_candidate = search.greedy_for(self.collect)  # as the collection uses it
        self.search = search
        if self.dataset is not None and not Path(self.dataset).is_file():
            raise MroError(f"RS data set {self.dataset} does not exist")


# ---------------------------------------------------------------- fine-tuning


def transition_batch(rows: list[dict], pad_id: int, mask_id: int, target: str, generator: torch.Generator):
    """Two consecutive steps per trajectory: ``(tokens, attn, P, targets, weight)`` for each of the two.

    ``targets [B, G]`` is True where the loss reads the model (the positions committed at the
    step, or every position still masked); ``tokens`` is the state before the step.
    """
    prompts = [r["prompt"] for r in rows]
    responses = [r["tokens"] for r in rows]
    tokens, attn, p = layout(prompts, responses, pad_id)
    cs = torch.tensor([r["commit_step"] for r in rows])
    n_steps = torch.tensor([max(r["commit_step"]) + 1 for r in rows])
    first = (torch.rand(len(rows), generator=generator) * (n_steps - 1).clamp_min(1)).long()
    first = torch.minimum(first, (n_steps - 2).clamp_min(0))
    out = []
    for offset in (0, 1):
        t = (first + offset)[:, None]
        valid = (first + offset < n_steps)[:, None]
        state = tokens.clone()
        hidden = (cs >= t) & (cs != PREFILLED) & valid
        state[:, p:][hidden] = mask_id
        tgt = (cs == t) if target == "transition" else hidden
        out.append((state, attn, p, tokens[:, p:], tgt & valid))
    return out


def transition_loss(model, state, attn, p, final_tokens, tgt) -> torch.Tensor:
    """Mean cross-entropy of the model on the target positions (per trajectory, then over the batch)."""
    logits = model.logits(state, attn)[:, p:].float()
    ce = F.cross_entropy(logits.transpose(1, 2), final_tokens, reduction="none")
    per_row = (ce * tgt).sum(-1) / tgt.sum(-1).clamp_min(1)
    has = tgt.any(-1)
    return (per_row * has).sum() / has.sum().clamp_min(1)


class RSTrainer(Plugin):
    """The RS plug-in of the spine: collect (before training), then fine-tune on the transitions."""

    accumulation_steps = 2  # the two consecutive steps of each trajectory: one optimizer step

    def __init__(self, cfg: RSConfig):
        self.cfg, self.task = cfg, get_task(cfg.task)
        self.source = problem_source(self.task, cfg)
        self.title = f"mro train rs: {cfg.model} on {cfg.task}"

    def accumulation(self, world: int, rank: int) -> int:
        return self.accumulation_steps

    def make_model(self, device):
        return load_trainable(self.cfg, device)  # refuses a run the model cannot decode (check_run)

    def read_data(self, model) -> None:
        self.val_examples = self.source.validation()
        if self.cfg.dataset:  # a given data set is checked before the run starts
            self._read(Path(self.cfg.dataset))

    def before_training(self, trainer) -> None:
        if not self.cfg.dataset:
            path = trainer.out / "rs_data.jsonl"
            if not has_checkpoint(trainer.out):
                rs_data.collect(trainer.model, self.task, self.source, self.cfg, path, trainer.acc)
            self._read(path)

    def _read(self, path: Path) -> None:
        self.data_path = path
        self.rows = [r for r in rs_data.read_dataset(path) if "tokens" in r]
        if not self.rows:
            raise MroError(f"RS data set {path} holds no trajectories (none kept: try keep=all or more problems)")

    def on_start(self, trainer) -> None:
        if trainer.start == 0:
            trainer.log({"kind": "data", "update": 0, "trajectories": len(self.rows), "problems": self.cfg.problems,
                         "path": str(self.data_path)})

    def validate(self, trainer):
        return validate_run(trainer, self.task, self.val_examples, self.cfg)

    def update(self, trainer, update: int) -> dict:
        cfg, model = self.cfg, trainer.model
        rank, world, dev = trainer.acc.process_index, trainer.acc.num_processes, model.device
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + update)
        pick = torch.randint(len(self.rows), (cfg.batch_size * world,), generator=g)[rank::world].tolist()
        steps = transition_batch([self.rows[i] for i in pick], model.pad_token_id, model.mask_token_id, cfg.target, g)
        total, norms = trainer.step(
            (lambda s=s: transition_loss(model, *(x.to(dev) if torch.is_tensor(x) else x for x in s)) / 2)
            for s in steps)
        return {"loss": round(total, 6), "grad_norm": norms[-1] if norms else None}


def train_rs(cfg: RSConfig) -> Path:
    """Collect (resumable), then fine-tune (resumable); return the folder of the best model."""
    return Trainer(cfg, RSTrainer(cfg)).run()
