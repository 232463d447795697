"""Supervised fine-tuning with the masked-diffusion loss (docs/method.md section 1), a plug-in of
the training spine (docs/architecture.md).

Two data sources:

- a task's generator (``mro train sft --task sudoku --out runs/sudoku-tiny``): the built-in tiny
  model from scratch (or ``--model`` a tiny-model folder) on fresh problems of the training split,
  the response positions of the tiny layout masked; validation is the greedy solved rate on
  held-out problems;
- a file of prompt/response pairs for any backend (``mro train sft --model <HF folder> --data
  pairs.jsonl --lora-r 8``, :mod:`mro.train.pairs`): chat template applied, the prompt never
  masked, the response (EOS-padded) masked as in LLaDA's SFT loss; validation is the loss on the
  last ``val_n`` pairs, held out.

Every batch is a pure function of ``(seed, step)``, so a resumed run continues exactly, and a run
under ``accelerate launch`` computes what one process computes (each process takes its share of
the batch's rows, noised by draws made for the whole batch).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mro.errors import MroError
from mro.models.tiny import TinyDLM
from mro.sampling.batch import layout
from mro.tasks import get_task
from mro.train.config import ModelSettings, includes
from mro.train.loss import masked_diffusion_rows
from mro.train.pairs import PairOrder, encode_pairs, pair_batch, read_pairs
from mro.train.problems import ProblemSource, validate
from mro.train.setup import load_trainable
from mro.train.tiny_run import TinyRunConfig, create_tiny
from mro.train.trainer import Plugin, Trainer


@dataclass
@includes(ModelSettings)
class SFTConfig(TinyRunConfig):
    """Masked-diffusion SFT: the built-in tiny model on a task's generator, or any model on a file of
    prompt/response pairs."""

    model: str | None = field(default=None, metadata={
        "help": "model to fine-tune: tiny-model folder, Hugging Face folder or hub id (default: a fresh "
                "built-in tiny model of --d-model ... on --task)"})
    data: str | None = field(default=None, metadata={
        "help": "prompt/response pairs (JSONL, Parquet, JSON or CSV) instead of the task's generator"})
    prompt_column: str = field(default="prompt", metadata={"help": "--data: column of the prompts"})
    response_column: str = field(default="response", metadata={"help": "--data: column of the responses"})
    system_prompt: str | None = field(default=None, metadata={
        "help": "--data: system turn of every prompt (none by default)"})
    max_length: int | None = field(default=None, metadata={
        "help": "--data: most tokens of a pair (prompt + response; longer responses are cut)", "min": 2})
    micro_batch: int = field(default=0, metadata={
        "help": "rows per forward/backward on a process; gradients accumulate over its share of the batch "
                "(0 = its whole share at once)", "min": 0})
    ordered_masks: float = field(default=0.0, metadata={
        "help": "share of training rows masked as a suffix of the response (left to right) instead of "
                "at i.i.d. positions (docs/method.md section 9); 0 = LLaDA's loss", "min": 0, "max": 1})


def make_batch(task, tokenizer, cfg: SFTConfig, step: int):
    """The whole batch of ``step``: tokens, maskable positions, attention mask (deterministic; every
    process lays it out, and the loss draws the masks for all of it)."""
    examples = cfg.examples(task, step)
    targets = [task.tiny_target(ex, tokenizer) for ex in examples]
    inputs = [task.tiny_input(ex, tokenizer) for ex in examples]
    tokens, attn, p = layout([t.prompt_ids for t in targets], [t.response_ids for t in targets],
                             tokenizer.pad_token_id)
    holes = torch.tensor([r.response_ids for r in inputs]) == tokenizer.mask_token_id
    maskable = torch.zeros_like(tokens, dtype=torch.bool)
    maskable[:, p:] = holes
    return tokens, maskable, attn


class SFTTrainer(Plugin):
    """The SFT plug-in: a batch source (task generator or pairs) and the masked-diffusion loss."""

    def __init__(self, cfg: SFTConfig):
        self.cfg, self.task = cfg, get_task(cfg.task)
        self.title = f"mro train sft: {cfg.model or 'tiny model'} on {cfg.data or cfg.task}"
        self.validate_at_start = cfg.model is not None  # a given starting model competes for best/

    def accumulation(self, world: int, rank: int) -> int:
        if self.cfg.batch_size % world:
            raise MroError(f"batch_size ({self.cfg.batch_size}) must divide evenly over {world} processes")
        share = self.cfg.batch_size // world
        self.micro = self.cfg.micro_batch or share
        return math.ceil(share / self.micro)

    def make_model(self, device):
        cfg = self.cfg
        if cfg.model is None:
            if cfg.lora_r:
                raise MroError("--lora-r is for Hugging Face models; the built-in tiny models train in full")
            return create_tiny(cfg, device)
        model = load_trainable(cfg, device)
        if cfg.data is None and not isinstance(model, TinyDLM):
            raise MroError(f"{cfg.model} is not a built-in tiny model: it has no layout for --task {cfg.task}; "
                           "give its SFT data as --data pairs.jsonl (prompt/response columns)")
        model.module.train()
        return model

    def read_data(self, model) -> None:
        cfg = self.cfg
        if cfg.data is None:
            source = ProblemSource(self.task, cfg.generator_options(), cfg.seed, cfg.val_n, val_seed=cfg.val_seed)
            self.val_examples = source.validation() if cfg.val_every else []
            return
        encoded = encode_pairs(model, read_pairs(cfg.data, cfg.prompt_column, cfg.response_column),
                               cfg.system_prompt, cfg.max_length)
        held = cfg.val_n if cfg.val_every else 0
        if len(encoded) <= held:
            raise MroError(f"{cfg.data} has {len(encoded)} pairs; need more than val_n={cfg.val_n} "
                           "(the last val_n are held out for validation)")
        self.pairs, self.val_pairs = encoded[:len(encoded) - held], encoded[len(encoded) - held:]
        self.order = PairOrder(len(self.pairs), cfg.seed)

    def batch(self, model, step: int):
        if self.cfg.data is None:
            return make_batch(self.task, model.tokenizer, self.cfg, step)
        rows = [self.pairs[i] for i in self.order.rows(step, self.cfg.batch_size)]
        return pair_batch(rows, model.pad_token_id, model.eos_token_id)

    def update(self, trainer, update: int) -> dict:
        cfg, model, acc = self.cfg, trainer.model, trainer.acc
        tokens, maskable, attn = (x.to(model.device) for x in self.batch(model, update))
        mine = list(range(acc.process_index, cfg.batch_size, acc.num_processes))

        def loss(rows):  # the same draws for the whole batch in every micro-batch and process
            gen = torch.Generator().manual_seed(cfg.seed * 7_919 + update)
            with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                return masked_diffusion_rows(model, tokens, maskable, attn, generator=gen,
                                             ordered_fraction=cfg.ordered_masks, rows=rows).sum() / len(mine)

        total, _ = trainer.step(functools.partial(loss, mine[lo:lo + self.micro])
                                for lo in range(0, len(mine), self.micro))
        return trainer.mean_over_processes({"loss": total})

    @torch.no_grad()
    def validate(self, trainer):
        cfg, model, acc = self.cfg, trainer.model, trainer.acc
        if cfg.data is None:
            solved = validate(model, self.task, self.val_examples, cfg.val_steps or [self.task.tiny_gen_length],
                              rank=acc.process_index, world=acc.num_processes, reduce=lambda x: acc.reduce(x, "sum"))
            return {"solved": {str(k): round(v, 4) for k, v in solved.items()}}, sum(solved.values()) / len(solved)
        total = torch.zeros(2, dtype=torch.float64, device=model.device)
        gen = torch.Generator().manual_seed(8_191 + cfg.seed)
        for lo in range(0, len(self.val_pairs), cfg.batch_size):
            tokens, maskable, attn = (x.to(model.device) for x in
                                      pair_batch(self.val_pairs[lo:lo + cfg.batch_size], model.pad_token_id,
                                                 model.eos_token_id))
            rows = masked_diffusion_rows(model, tokens, maskable, attn, generator=gen,
                                         rows=slice(acc.process_index, None, acc.num_processes))
            total += torch.stack([rows.sum().double(), torch.tensor(float(len(rows)), device=model.device)])
        total = acc.reduce(total, "sum")
        loss = round(float(total[0] / total[1].clamp_min(1)), 6)
        return {"loss": loss}, -loss

    def result(self, out: Path) -> Path:
        return out / "final"


def train_sft(cfg: SFTConfig) -> Path:
    """Run (or resume) SFT; return the folder of the model where the run stopped (``final/``;
    ``best/`` holds the best-validated one when validation is on)."""
    return Trainer(cfg, SFTTrainer(cfg)).run()
