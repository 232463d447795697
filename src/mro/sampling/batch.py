"""Left-padded batch layout shared by the sampler and the trainers."""

from __future__ import annotations

from typing import Sequence

import torch

from mro.errors import MroError


def layout(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int):
    """Prompts left-padded to a common length ``P``, then responses of equal length ``G``.

    Returns ``(tokens [B, P+G], attention_mask [B, P+G], P)``.
    """
    if len(prompts) != len(responses) or not prompts:
        raise MroError("a batch needs one response per prompt and at least one prompt")
    g = len(responses[0])
    if any(len(r) != g for r in responses):
        raise MroError("all responses of a batch must have the same length")
    p = max(len(x) for x in prompts)
    tokens = torch.full((len(prompts), p + g), pad_id, dtype=torch.long)
    attn = torch.zeros((len(prompts), p + g), dtype=torch.long)
    for i, (pr, re) in enumerate(zip(prompts, responses)):
        if pr:
            tokens[i, p - len(pr):p] = torch.as_tensor(list(pr), dtype=torch.long)
        tokens[i, p:] = torch.as_tensor(list(re), dtype=torch.long)
        attn[i, p - len(pr):] = 1
    return tokens, attn, p
