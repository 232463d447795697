"""LLaDA's block schedule (docs/method.md section 2).

The response of ``gen_length`` positions is cut into blocks of ``block_length`` decoded left to
right; ``steps`` are split evenly over the blocks; inside a block the masked positions are split
over its steps as evenly as possible, the remainder going to the first steps.

That split has a property the sampler relies on to resume from any intermediate state: the
count for the next step is ``ceil(masks left in the block / steps left in the block)``, so it
needs no memory of the past (the suffix of an even split is the even split of what is left).
"""

from __future__ import annotations

import torch

from mro.errors import MroError


def check_schedule(gen_length: int, steps: int, block_length: int) -> tuple[int, int]:
    """Validate a schedule; return ``(num_blocks, steps_per_block)``."""
    if gen_length < 1:
        raise MroError(f"gen_length must be >= 1, got {gen_length}")
    if block_length < 1:
        raise MroError(f"block_length must be >= 1, got {block_length}")
    if steps < 1:
        raise MroError(f"steps must be >= 1, got {steps}")
    if gen_length % block_length:
        raise MroError(f"gen_length {gen_length} is not divisible by block_length {block_length}")
    num_blocks = gen_length // block_length
    if steps % num_blocks:
        raise MroError(f"steps {steps} is not divisible by the number of blocks {num_blocks} "
                       f"(gen_length {gen_length} / block_length {block_length})")
    return num_blocks, steps // num_blocks


def split_evenly(counts: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B]`` counts -> ``[B, steps]`` per-step counts, remainder to the first steps."""
    base = counts // steps
    rem = counts % steps
    out = base[:, None].expand(-1, steps).clone()
    out += (torch.arange(steps, device=counts.device)[None, :] < rem[:, None]).to(out.dtype)
    return out


def tokens_this_step(masks_left: torch.Tensor, steps_left: int) -> torch.Tensor:
    """How many positions each row commits now: ``ceil(masks_left / steps_left)``."""
    return (masks_left + steps_left - 1) // steps_left
