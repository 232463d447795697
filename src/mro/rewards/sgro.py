"""SGRO, step-wise group reward optimisation (docs/method.md section 4): groups, returns, group sampling.

A trajectory of ``T`` steps is cut into groups of ``w`` consecutive steps (the last may be
shorter). Per group ``g``:

    G_g = R_intra_g + [g is last] * w_q * R_q + lam * Phi(s_end(g)) - Phi(s_start(g))

and every step of the group shares ``G_g``. Only ``n`` groups per update are used, drawn with
replacement from a proposal ``q``; weighting each draw by ``1 / (n_groups * q_g)`` keeps
``mean_i weight_i * f(g_i)`` an unbiased estimate of ``mean_g f(g)`` whatever ``q`` is.
Everything here is batched over rows ``[B, ...]``; no Python loop runs over the batch.
"""

from __future__ import annotations

import torch

from mro.errors import MroError

Bounds = list[tuple[int, int]]


def group_bounds(num_steps: int, w: int) -> Bounds:
    """``[(start, end), ...]``: steps ``start <= t < end`` of each group of ``w`` steps."""
    if isinstance(w, bool) or not isinstance(w, int) or w < 1:
        raise MroError(f"SGRO group size w must be an integer >= 1, got {w!r}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
        raise MroError(f"number of steps must be an integer >= 0, got {num_steps!r}")
    return [(start, min(start + w, num_steps)) for start in range(0, num_steps, w)]


def _step_groups(bounds: Bounds, device) -> torch.Tensor:
    """``[T]`` the group index of every step."""
    lengths = torch.tensor([end - start for start, end in bounds], device=device, dtype=torch.long)
    return torch.repeat_interleave(torch.arange(len(bounds), device=device), lengths)


def group_intra(per_step: torch.Tensor, bounds: Bounds, mode: str = "end") -> torch.Tensor:
    """``[B, n_groups]`` intra reward per group (docs/method.md section 4, ``group_reward: end|sum``).

    ``per_step`` is ``[B, T]`` (one value per step): ``end`` keeps each group's last step, ``sum``
    sums the group's steps (the paper's Algorithm 1). Input that is already ``[B, n_groups]``
    (the preferred ``end`` path, where rewards were evaluated once per group on the tokens
    committed within it) is returned as is. NaN propagates.
    """
    if mode not in ("end", "sum"):
        raise MroError(f"group_reward must be 'end' or 'sum', got {mode!r}")
    n_groups, num_steps = len(bounds), (bounds[-1][1] if bounds else 0)
    width = per_step.shape[1]
    if width == n_groups:
        return per_step
    if width != num_steps:
        raise MroError(f"rewards have {width} columns; expected {num_steps} steps or {n_groups} groups")
    if mode == "end":
        ends = torch.tensor([end - 1 for _, end in bounds], device=per_step.device)
        return per_step[:, ends]
    out = per_step.new_zeros(per_step.shape[0], n_groups)
    return out.index_add_(1, _step_groups(bounds, per_step.device), per_step)


def group_returns(
    intra: torch.Tensor,
    phi: torch.Tensor | None,
    final_quality: torch.Tensor | None,
    lam: float = 1.0,
    w_q: float = 1.0,
) -> torch.Tensor:
    """``[B, G]`` group returns ``intra + [last] * w_q * R_q + lam * phi[:, 1:] - phi[:, :-1]``.

    The one place ``w_q`` is applied: ``final_quality`` is the unweighted ``R_q`` (what
    :meth:`mro.rewards.multi.MultiReward.quality` and :func:`mro.rewards.quality.quality_reward`
    return); ``intra`` already carries ``w_tv`` and ``w_ppl`` (``MultiReward.intra``).

    ``phi`` is ``[B, G+1]``, the potential at every group boundary (``phi[:, g]`` at the start of
    group ``g``, ``phi[:, g+1]`` at its end); ``None`` turns shaping off. ``final_quality`` is
    ``[B]``; it is ignored (may be ``None``) when ``w_q == 0``. With ``lam = 1`` the shaping
    telescopes: its sum over groups is ``phi[:, -1] - phi[:, 0]``.
    """
    returns = intra.clone()
    n_groups = intra.shape[1]
    if phi is not None:
        if phi.shape != (intra.shape[0], n_groups + 1):
            raise MroError(f"phi must be [B, G+1] = {[intra.shape[0], n_groups + 1]}, got {list(phi.shape)}")
        returns = returns + lam * phi[:, 1:] - phi[:, :-1]
    if w_q != 0 and n_groups > 0:
        if final_quality is None:
            raise MroError(f"w_q is {w_q} but no final quality reward was given")
        returns[:, -1] = returns[:, -1] + w_q * final_quality
    return returns


def proposal_probs(
    returns: torch.Tensor,
    proposal: str = "uniform",
    baseline: float | torch.Tensor | None = None,
    eps: float = 0.1,
) -> torch.Tensor:
    """``[B, G]`` proposal ``q`` over groups, each row summing to 1.

    ``uniform``: ``1 / G``. ``advantage``: ``q_g`` proportional to ``|G_g - b| + eps * mean_g |G_g - b|``
    (``b``: ``baseline``, a number or ``[B]``; default the row mean). The relative floor ``eps``
    keeps every ``q_g > 0`` and bounds the importance weights by ``(1 + eps) / eps`` (11 at the
    default); a row whose returns are all equal gets the uniform proposal.
    """
    n_groups = returns.shape[1]
    if n_groups == 0:
        raise MroError("cannot sample groups from a trajectory with no groups")
    if proposal == "uniform":
        return torch.full_like(returns, 1.0 / n_groups, dtype=torch.float64)
    if proposal != "advantage":
        raise MroError(f"group proposal must be 'uniform' or 'advantage', got {proposal!r}")
    if not eps > 0:
        raise MroError(f"proposal eps must be > 0, got {eps!r}")
    values = returns.double()
    if baseline is None:
        b = values.mean(dim=1, keepdim=True)
    else:
        b = torch.as_tensor(baseline, dtype=torch.float64, device=values.device).reshape(-1, 1)
    score = (values - b).abs()
    score = score + eps * score.mean(dim=1, keepdim=True) + 1e-12
    return score / score.sum(dim=1, keepdim=True)


def sample_groups(
    returns: torch.Tensor,
    n: int,
    proposal: str = "uniform",
    baseline: float | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    eps: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` groups per row with replacement: ``(indices [B, n], weights [B, n])``.

    ``weights = 1 / (n_groups * q_g)``, so ``(weights * f[indices]).mean(1)`` is unbiased for
    ``f.mean(1)``. See :func:`proposal_probs` for ``proposal``, ``baseline`` and ``eps``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise MroError(f"number of sampled groups must be an integer >= 1, got {n!r}")
    q = proposal_probs(returns, proposal, baseline, eps)
    indices = torch.multinomial(q, n, replacement=True, generator=generator)
    weights = 1.0 / (q.shape[1] * q.gather(1, indices))
    return indices, weights.to(returns.dtype if returns.is_floating_point() else torch.float32)


def expand_to_steps(group_values: torch.Tensor, bounds: Bounds) -> torch.Tensor:
    """``[B, T]``: every step of a group gets its group's value (e.g. its return ``G_g``)."""
    if group_values.shape[1] != len(bounds):
        raise MroError(f"got {group_values.shape[1]} group values for {len(bounds)} groups")
    return group_values[:, _step_groups(bounds, group_values.device)]
