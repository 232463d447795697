"""Training of the built-in tiny causal LM that scores perplexity (docs/method.md sections 3 and 9, ``R_ppl``).

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

from mro.errors import MroError
from mro.models.tiny import TinyDLM
from mro.tasks import get_task
from mro.train.loop import TrainConfig, train


@dataclass
class ARConfig(TrainConfig):
    """Train the built-in tiny causal PPL scorer on a synthetic task's responses."""

    partial_fraction: float = field(default=0.5, metadata={
        "help": "share of training texts with a random part of the generated positions dropped"})

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.partial_fraction <= 1:
            raise MroError(f"partial_fraction must be in [0, 1], got {self.partial_fraction}")


def corpus_batch(task, tokenizer, cfg: ARConfig, step: int) -> list[str]:
    """Texts of ``step`` (deterministic in seed and step)."""
    examples = task.generate(cfg.batch_size, seed=cfg.seed * 1_000_003 + step, split="train", **cfg.generator_options())
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
    attn = (batch != tok.pad_token_id).long()
    logits = model.logits(batch, attn)[:, :-1]
    return F.cross_entropy(logits.transpose(1, 2), batch[:, 1:], ignore_index=tok.pad_token_id)


def train_ar(cfg: ARConfig) -> Path:
    """Run (or resume) training of the causal scorer; return its folder."""
    task = get_task(cfg.task)
    torch.manual_seed(cfg.seed)
    model = TinyDLM.create(name=Path(cfg.out).name, d_model=cfg.d_model, n_layers=cfg.n_layers,
                           n_heads=cfg.n_heads, d_ff=cfg.d_ff, causal=True)
    return train(cfg, model, lambda step: ar_loss(model, corpus_batch(task, model.tokenizer, cfg, step)),
                 desc=f"ar {cfg.task}")
