"""Model, optimizer and distributed setup of the training spine, on accelerate (docs/architecture.md).

One code path for one CPU process and for ``accelerate launch`` with DDP, FSDP or DeepSpeed
underneath (our code starts no processes of its own). Hugging Face models can train LoRA
adapters through ``peft``; the saved adapter folder loads back with ``--model``.
"""

from __future__ import annotations

import math

import torch

from mro.errors import MroError
from mro.models.base import DiffusionLM
from mro.models.load import load_model


def make_accelerator(cfg, grad_accum: int):
    """An ``Accelerator`` whose gradient accumulation matches one optimizer step of ``grad_accum`` micro-batches."""
    from accelerate import Accelerator

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise MroError("--device cuda was asked for but torch sees no CUDA device")
    # on CPU, processes started by `accelerate launch` join one gloo group
    cpu = cfg.device == "cpu" or not torch.cuda.is_available()
    return Accelerator(gradient_accumulation_steps=grad_accum, cpu=cpu)


def apply_lora(model: DiffusionLM, cfg) -> None:
    """Wrap a Hugging Face model's module with LoRA adapters (only they will train)."""
    from mro.models.hf import HFDiffusionLM

    if not isinstance(model, HFDiffusionLM):
        raise MroError("--lora-r is for Hugging Face models; the built-in tiny models train in full")
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise MroError("LoRA needs peft: pip install 'mro[hf]'") from None
    targets = cfg.lora_targets.strip()
    target_modules = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=target_modules, bias="none")
    try:
        model.module = get_peft_model(model.module, lcfg)
    except ValueError as e:
        raise MroError(f"LoRA: {str(e).splitlines()[0]}") from None


def load_trainable(cfg, device: torch.device) -> DiffusionLM:
    """The model to train, on ``device``: LoRA-wrapped and/or gradient-checkpointed when asked.

    For the trainers that learn from a task's problems (RS, RL: a ``RunConfig``), a model that
    cannot decode the run (no KV cache for ``--cache``, another task's layout) or a step count
    above the response length is refused here, before anything is decoded
    (:func:`mro.train.problems.check_run`)."""
    from mro.tasks import get_task
    from mro.train.problems import RunConfig, check_run

    model = load_model(cfg.model, device=str(device), dtype=cfg.dtype, remote_code=cfg.remote_code)
    if cfg.lora_r:
        apply_lora(model, cfg)
    if cfg.grad_checkpointing:
        enable = getattr(model.module, "gradient_checkpointing_enable", None)
        if enable is None:
            raise MroError(f"{cfg.model} does not support gradient checkpointing")
        enable()
    model.module.eval()  # no dropout: the policy that is scored is the policy that sampled
    if isinstance(cfg, RunConfig):
        check_run(model, get_task(cfg.task), cfg)
    return model


def optimizer_for(model: DiffusionLM, cfg, total_updates: int):
    """AdamW over the trainable parameters and the one schedule of every trainer: linear warm-up
    over ``warmup`` updates, then constant or cosine down to a tenth at ``total_updates``."""
    params = [p for p in model.module.parameters() if p.requires_grad]
    if not params:
        raise MroError(f"{model.name} has no trainable parameters")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, cfg.adam_beta2))
    warm = max(1, cfg.warmup)
    cosine = cfg.lr_schedule == "cosine"

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if not cosine:
            return 1.0
        progress = min(1.0, (step - warm) / max(1, total_updates - warm))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)
