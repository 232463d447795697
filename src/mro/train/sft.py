"""Supervised training of the tiny DLM with the masked-diffusion loss (docs/method.md section 1).

``mro train sft --task sudoku --out runs/sudoku-tiny``. Every batch is a pure function of
``(seed, step)`` (fresh problems from the task's training split, fresh mask ratios), so a run
that resumes from its checkpoint continues exactly as if it had never stopped. The finished
model is a normal model folder (``config.json``, ``model.safetensors``, ``tokenizer.json``)
with ``train_log.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from mro.errors import MroError
from mro.models.tiny import TinyDLM
from mro.sampling.batch import layout
from mro.tasks import get_task
from mro.train.loop import TrainConfig, train
from mro.train.loss import masked_diffusion_loss


@dataclass
class SFTConfig(TrainConfig):
    """Train a built-in tiny diffusion LM on a synthetic task from scratch (or resume)."""

    ordered_masks: float = field(default=0.0, metadata={
        "help": "share of training rows masked as a suffix of the response (left to right) instead of "
                "at i.i.d. positions (docs/method.md section 9); 0 = LLaDA's loss"})

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.ordered_masks <= 1:
            raise MroError(f"ordered_masks must be in [0, 1], got {self.ordered_masks}")


def make_batch(task, tokenizer, cfg: TrainConfig, step: int):
    """The batch of ``step``: tokens, maskable positions, attention mask (deterministic)."""
    examples = task.generate(cfg.batch_size, seed=cfg.seed * 1_000_003 + step, split="train", **cfg.generator_options())
    targets = [task.tiny_target(ex, tokenizer) for ex in examples]
    inputs = [task.tiny_input(ex, tokenizer) for ex in examples]
    tokens, attn, p = layout([t.prompt_ids for t in targets], [t.response_ids for t in targets],
                             tokenizer.pad_token_id)
    holes = torch.tensor([r.response_ids for r in inputs]) == tokenizer.mask_token_id
    maskable = torch.zeros_like(tokens, dtype=torch.bool)
    maskable[:, p:] = holes
    return tokens, maskable, attn


def train_sft(cfg: SFTConfig) -> Path:
    """Run (or resume) training; return the folder of the saved model."""
    task = get_task(cfg.task)
    torch.manual_seed(cfg.seed)
    model = TinyDLM.create(name=Path(cfg.out).name, d_model=cfg.d_model, n_layers=cfg.n_layers,
                           n_heads=cfg.n_heads, d_ff=cfg.d_ff)

    def step_loss(step: int) -> torch.Tensor:
        tokens, maskable, attn = make_batch(task, model.tokenizer, cfg, step)
        gen = torch.Generator().manual_seed(cfg.seed * 7_919 + step)
        return masked_diffusion_loss(model, tokens, maskable, attn, generator=gen, ordered_fraction=cfg.ordered_masks)

    return train(cfg, model, step_loss, desc=f"sft {cfg.task}", validate=validator(task, model, cfg))


def validator(task, model: TinyDLM, cfg: TrainConfig):
    """Greedy solved rate on ``val_n`` held-out problems of the test split (generator seed
    8191 + seed, as the RL and RS trainers validate), keyed by step count; None when off."""
    if not cfg.val_every:
        return None
    from mro.train.runs import ValSettings, validate

    examples = task.generate(cfg.val_n, seed=8191 + cfg.seed, split="test", **cfg.generator_options())
    settings = ValSettings(val_steps=cfg.val_steps or [task.tiny_gen_length])
    return lambda: {str(k): round(v, 4) for k, v in validate(model, task, examples, settings).items()}
