"""Perplexity reward ``R_ppl`` (docs/method.md section 3, intra-sequence correlation).

An autoregressive LM scores the text of a state with the mask tokens dropped:
``R_ppl = (C - min(PPL, C)) / F`` (C = upper bound, F = scale; the paper's 100 and 100; this
functional form is reconstructed, see the spec). The reward lies in ``[0, C / F]`` for any
PPL, including ``inf`` (an empty text) which gives 0.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from mro.errors import MroError
from mro.models.ar import PerplexityScorer
from mro.models.base import DiffusionLM
from mro.sampling.trajectory import Trajectory


def ppl_to_reward(ppl: float, upper: float = 100.0, scale: float = 100.0) -> float:
    """``(C - min(PPL, C)) / F``; NaN perplexities count as the worst."""
    if upper <= 0 or scale <= 0:
        raise MroError(f"PPL reward bound and scale must be > 0, got C={upper}, F={scale}")
    if math.isnan(ppl):
        ppl = math.inf
    return (upper - min(ppl, upper)) / scale


def state_texts(model: DiffusionLM, traj: Trajectory, t: int, hole: str | None = None) -> list[str]:
    """The response text of the state after ``t`` steps, mask tokens dropped (or, with ``hole``,
    written as that character: character tokenizers only)."""
    response = traj.state(t)[:, traj.prompt_length:].cpu()
    if hole is not None:
        (hole_id,) = model.tokenizer.encode(hole)
        response = response.masked_fill(response == model.mask_token_id, hole_id)
    return [model.tokenizer.decode([x for x in row.tolist() if x != model.mask_token_id]) for row in response]


def perplexity_rewards(scorer: PerplexityScorer, model: DiffusionLM, traj: Trajectory, at: Sequence[int],
                       upper: float = 100.0, scale: float = 100.0) -> torch.Tensor:
    """``R_ppl`` of the states after each step count in ``at``: ``[B, len(at)]``, all scored in one call."""
    if getattr(scorer, "shares_vocabulary", lambda _: False)(model.tokenizer):  # built-in pair: no strings
        states = torch.cat([traj.state(t)[:, traj.prompt_length:] for t in at])
        ppl = scorer.perplexity_of_ids(states)
    else:
        texts = [text for t in at for text in state_texts(model, traj, t)]
        ppl = scorer.perplexity(texts)
    r = torch.tensor([ppl_to_reward(p, upper, scale) for p in ppl], dtype=torch.float32)
    return r.view(len(at), traj.batch_size).T.to(traj.tokens.device)
