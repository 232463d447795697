"""Token verification reward ``R_tv`` (docs/method.md section 3, intra-sequence correlation).

After a step (or an SGRO group of steps) commits positions ``M``, the DLM re-reads the state
with exactly one committed position ``m`` masked again and reports the log-probability of the
token it committed there: ``R_tv = mean_{m in S} log p(r[m] | prompt, r with m masked)``,
``S`` = ``tokens`` positions of ``M`` drawn at random (the paper: 1) or all of them. All
leave-one-out variants of all groups and rows go through batched forward passes.
"""

from __future__ import annotations

from typing import Sequence

import torch

from mro.errors import MroError
from mro.models.base import DiffusionLM
from mro.sampling.cache import cached_logits_at
from mro.sampling.trajectory import Trajectory


def committed_in_groups(traj: Trajectory, bounds: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``[B, n_groups, G]`` True at the positions committed within each group of steps."""
    dev = traj.commit_step.device
    starts = torch.tensor([s for s, _ in bounds], device=dev)[None, :, None]
    ends = torch.tensor([e for _, e in bounds], device=dev)[None, :, None]
    cs = traj.commit_step[:, None, :]
    return (cs >= starts) & (cs < ends)


def _selected(traj: Trajectory, bounds: Sequence[tuple[int, int]], tokens: int | str,
              generator: torch.Generator | None) -> torch.Tensor:
    """``[B, n_groups, G]`` True at the positions to verify for each group."""
    cand = committed_in_groups(traj, bounds)
    dev = cand.device
    if tokens == "all":
        return cand
    if not isinstance(tokens, int) or tokens < 1:
        raise MroError(f"tv_tokens must be a whole number >= 1 or 'all', got {tokens!r}")
    score = torch.rand(cand.shape, device=dev, generator=generator).masked_fill(~cand, -1.0)
    top = score.topk(min(tokens, cand.shape[-1]), dim=-1).indices
    return torch.zeros_like(cand).scatter_(-1, top, True) & cand


@torch.no_grad()
def token_verification(model: DiffusionLM, traj: Trajectory, bounds: Sequence[tuple[int, int]],
                       tokens: int | str = 1, generator: torch.Generator | None = None,
                       batch_size: int | None = None, use_cache: bool = True) -> torch.Tensor:
    """``R_tv`` of each group ``[start, end)`` of steps: ``[B, n_groups]``, NaN where a group committed nothing.

    Each group is verified on the state at its end, over the tokens committed within it; with
    groups of one step (``bounds = [(t, t + 1) ...]``) this is the per-step reward.
    ``use_cache=False``: never read the trajectory's KV cache (a verifier other than the model
    that decoded it).
    """
    if any(not 0 <= s < e <= traj.steps_done for s, e in bounds):
        raise MroError(f"step groups {list(bounds)} fall outside the {traj.steps_done} steps decoded")
    if batch_size is None:  # CPU matmuls lose per-row speed past ~128 rows; GPUs want large batches
        batch_size = 128 if traj.tokens.device.type == "cpu" else 1024
    sel = _selected(traj, bounds, tokens, generator)
    rows, grp, pos = sel.nonzero(as_tuple=True)
    b, n = traj.batch_size, len(bounds)
    total = torch.zeros(b * n, device=traj.tokens.device)
    count = torch.zeros(b * n, device=traj.tokens.device)
    if len(rows):
        states = torch.stack([traj.state(e) for _, e in bounds])  # [n, B, N]
        col = pos + traj.prompt_length
        logp = torch.empty(len(rows), device=traj.tokens.device)
        for i in range(0, len(rows), batch_size):
            r, g, c = rows[i:i + batch_size], grp[i:i + batch_size], col[i:i + batch_size]
            x = states[g, r]
            ar = torch.arange(len(r), device=x.device)
            target = x[ar, c]
            x[ar, c] = model.mask_token_id
            # with a KV cache (mro.sampling.cache), states of the cached block reuse it
            cached = None if traj.cache is None or not use_cache else cached_logits_at(model, traj.cache, x, traj.attention_mask[r], r, c)
            logits = (model.logits_at(x, traj.attention_mask[r], c) if cached is None else cached).float()
            logp[i:i + batch_size] = torch.log_softmax(logits, -1).gather(-1, target[:, None]).squeeze(-1)
        flat = rows * n + grp
        total.index_add_(0, flat, logp)
        count.index_add_(0, flat, torch.ones_like(logp))
    out = total / count
    return out.view(b, n)


def per_step_bounds(num_steps: int) -> list[tuple[int, int]]:
    """Groups of one step each: ``R_tv_t`` for every step."""
    return [(t, t + 1) for t in range(num_steps)]
