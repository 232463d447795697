"""Training of the built-in tiny causal LM that scores perplexity, a plug-in of the training spine (docs/method.md sections 3 and 9, ``R_ppl``).

The PPL reward scores response states with the mask tokens dropped, so the corpus is exactly
that: reference responses of the task's training split, and, half of the time, the same with a
random fraction ``t ~ U(0, 1)`` of the generated positions dropped (what an intermediate state
looks like once its masks are removed). Loss: next-character cross-entropy after ``<bos>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from mro.models.tiny import TinyDLM
from mro.tasks import get_task
from mro.train.problems import ProblemSource
from mro.train.tiny_run import TinyRunConfig, create_tiny
from mro.train.trainer import Plugin, Trainer


@dataclass
class ARConfig(TinyRunConfig):
    """Train the built-in tiny causal PPL scorer on a synthetic task's responses."""

    partial_fraction: float = field(default=0.5, metadata={
        "help": "share of training texts with a random part of the generated positions dropped", "min": 0, "max": 1})
    val_every: int = field(default=0, metadata={
        "help": "steps between validations (the loss on val_n held-out test-split responses); 0 = none", "min": 0})


def corpus_batch(task, tokenizer, cfg: ARConfig, step: int) -> list[str]:
    """Texts of ``step`` (deterministic in seed and step)."""
    examples = cfg.examples(task, step)
    g = torch.Generator().manual_seed(cfg.seed * 4_421 + step)
    texts = []
    for ex in examples:
        target = task.tiny_target(ex, tokenizer).response_ids
        holes = [t == tokenizer.mask_token_id for t in task.tiny_input(ex, tokenizer).response_ids]
        keep = [True] * len(target)
        if float(torch.rand(1, generator=g)) < cfg.partial_fraction:
            t = float(torch.rand(1, generator=g))
            drop = (torch.rand(len(target), generator=g) < t).tolist()
            keep = [not (h and d) for h, d in zip(holes, drop)]
        texts.append(tokenizer.decode([x for x, k in zip(target, keep) if k]))
    return texts


def ar_loss(model: TinyDLM, texts: list[str]) -> torch.Tensor:
    tok = model.tokenizer
    ids = [[tok.bos_token_id] + tok.encode(t) + [tok.eos_token_id] for t in texts]
    width = max(len(x) for x in ids)
    batch = torch.full((len(ids), width), tok.pad_token_id, dtype=torch.long)
    for r, x in enumerate(ids):
        batch[r, :len(x)] = torch.tensor(x)
    batch = batch.to(model.device)
    attn = (batch != tok.pad_token_id).long()
    logits = model.logits(batch, attn)[:, :-1]
    return F.cross_entropy(logits.transpose(1, 2), batch[:, 1:], ignore_index=tok.pad_token_id)


class ScorerTrainer(Plugin):
    """The PPL-scorer plug-in: a text batch source and next-character cross-entropy."""

    validate_at_start = False

    def __init__(self, cfg: ARConfig):
        self.cfg, self.task = cfg, get_task(cfg.task)
        self.title = f"mro train ar: PPL scorer on {cfg.task}"

    def make_model(self, device):
        return create_tiny(self.cfg, device, causal=True)

    def before_training(self, trainer) -> None:
        tok = trainer.model.tokenizer
        examples = ProblemSource(self.task, self.cfg.generator_options(), self.cfg.seed, self.cfg.val_n,
                                 val_seed=self.cfg.val_seed).validation() \
            if self.cfg.val_every else []
        self.val_texts = [tok.decode(self.task.tiny_target(ex, tok).response_ids) for ex in examples]

    def update(self, trainer, update: int) -> dict:
        acc, model = trainer.acc, trainer.model
        texts = corpus_batch(self.task, model.tokenizer, self.cfg, update)[acc.process_index::acc.num_processes]

        def loss():
            with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
                return ar_loss(model, texts)

        total, _ = trainer.step([loss])
        return trainer.mean_over_processes({"loss": total})

    @torch.no_grad()
    def validate(self, trainer):
        acc = trainer.acc
        loss = float(ar_loss(trainer.model, self.val_texts[acc.process_index::acc.num_processes]))
        loss = round(trainer.mean_over_processes({"loss": loss})["loss"], 6)
        return {"loss": loss}, -loss

    def result(self, out: Path) -> Path:
        return out / "final"


def train_ar(cfg: ARConfig) -> Path:
    """Run (or resume) training of the causal scorer; return its folder (``final/``)."""
    return Trainer(cfg, ScorerTrainer(cfg)).run()
