"""The RL objective (docs/method.md sections 4 and 7): baselines and advantages of the SGRO returns
(:mod:`mro.train.rl_returns`), the per-step weights of sampled groups, and the policy loss of a micro-batch of
(trajectory, step) pairs (REINFORCE, or PPO-style clipped ratios), with the k3 KL to the
starting policy.
"""

from __future__ import annotations

import contextlib
import copy

import torch

from mro.models.base import DiffusionLM
from mro.rewards.sgro import expand_to_steps, sample_groups
from mro.sampling.trajectory import Trajectory
from mro.train.loss import committed_logprobs


def advantages_of(returns: torch.Tensor, cfg, reduce_mean=None) -> torch.Tensor:
    """``A = G - b`` per group; ``group``: mean over the K rollouts of a problem (per group index),
    ``batch``: mean over every rollout of the update (all processes, through ``reduce_mean``)."""
    if cfg.baseline == "none":
        adv = returns.clone()
    elif cfg.baseline == "group":
        per = returns.view(-1, cfg.rollouts, returns.shape[1])
        adv = (per - per.mean(1, keepdim=True)).view_as(returns)
    else:
        mean = returns.mean(0, keepdim=True)
        if reduce_mean is not None:
            mean = reduce_mean(mean)
        adv = returns - mean
    if cfg.scale_advantages:  # per problem under the group baseline (GRPO), over the batch otherwise
        per = adv.view(-1, cfg.rollouts, adv.shape[1])
        std = per.std(1, keepdim=True) if cfg.baseline == "group" else adv.std()
        adv = (per / (std + 1e-4)).view_as(adv)
    return adv


def step_coefficients(returns: torch.Tensor, adv: torch.Tensor, bounds, cfg,
                      generator: torch.Generator) -> torch.Tensor:
    """``[N, steps]`` the weight of each step's log-prob: ``A_g`` times the group's sampling weight.

    Every group: weight ``1 / n_groups``. Sampled groups (``groups = n``): ``n`` draws from the
    proposal, each with ``1 / (n_groups * q_g * n)``, so the expectation equals the every-group
    loss (docs/method.md section 4).
    """
    n_groups = len(bounds)
    if cfg.groups == 0:
        weight = torch.full_like(adv, 1.0 / n_groups)
    else:
        idx, w = sample_groups(returns, cfg.groups, cfg.proposal, generator=generator)
        weight = torch.zeros_like(adv).scatter_add_(1, idx.to(adv.device), (w / cfg.groups).to(adv.dtype).to(adv.device))
    return expand_to_steps(weight * adv, bounds)


def policy_loss(model, traj: Trajectory, pairs: torch.Tensor, coef: torch.Tensor, cfg,
                banned: list[int], n_total: int, ref_model=None,
                logp_gap: list | None = None) -> tuple[torch.Tensor, float]:
    """The loss of one micro-batch of ``pairs [M, 2]`` (row, step); returns (loss, summed k3 KL).

    ``loss = -(1/n_total) * sum_pairs coef * sum_{i committed at t} f(logp_i)`` with ``f`` the
    log-prob itself (REINFORCE) or the clipped importance ratio against the rollout's log-prob
    (PPO), plus ``kl_coef`` times the k3 KL of the committed tokens to the reference policy.
    ``logp_gap``: a list that receives ``(sum |rollout - recomputed log-prob|, count)`` of the
    committed tokens (the recomputation never uses a KV cache; a cached rollout's differ).
    """
    rows, steps = pairs[:, 0], pairs[:, 1]
    commit = traj.commit_step[rows]
    committed = commit == steps[:, None]
    states = traj.tokens[rows].clone()
    resp = states[:, traj.prompt_length:]
    resp[commit >= steps[:, None]] = traj.mask_token_id
    tokens = traj.tokens[rows, traj.prompt_length:]
    attn = traj.attention_mask[rows]
    logp = committed_logprobs(model, states, attn, tokens, committed, traj.prompt_length, cfg.temperature, banned)
    if logp_gap is not None:
        gap = (logp.detach() - traj.logprob[rows].nan_to_num(0.0)).abs()
        logp_gap.append((float(gap[committed].sum()), int(committed.sum())))
    c = coef[rows, steps][:, None]
    if cfg.clip_eps > 0 or cfg.epochs > 1:
        old = traj.logprob[rows].nan_to_num(0.0)
        ratio = torch.exp(logp - old)
        surr = ratio * c
        if cfg.clip_eps > 0:
            clipped = ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * c
            surr = torch.minimum(surr, clipped)
        per = -surr
    else:
        per = -c * logp
    per = torch.where(committed, per, torch.zeros_like(per))
    kl_sum = 0.0
    if ref_model is not None:
        with torch.no_grad(), reference_policy(ref_model) as ref:
            ref_logp = committed_logprobs(ref, states, attn, tokens, committed, traj.prompt_length,
                                          cfg.temperature, banned)
        d = ref_logp - logp
        k3 = torch.where(committed, torch.exp(d) - d - 1, torch.zeros_like(d))
        per = per + cfg.kl_coef * k3 * (coef[rows, steps] != 0)[:, None]
        kl_sum = float(k3.detach().sum())
    return per.sum() / n_total, kl_sum


def micro_batches(coef: torch.Tensor, n_chunks: int) -> list[torch.Tensor]:
    """The (row, step) pairs with a non-zero weight, split into exactly ``n_chunks`` chunks (an
    empty chunk becomes one zero-weight pair: every process runs the same number of backward passes)."""
    pairs = (coef != 0).nonzero()
    if len(pairs) == 0:
        pairs = torch.zeros(1, 2, dtype=torch.long, device=coef.device)
    chunks = list(torch.tensor_split(pairs, n_chunks))
    return [ch if len(ch) else pairs[:1] for ch in chunks]


@contextlib.contextmanager
def reference_policy(model: DiffusionLM):
    """The frozen starting policy for the KL term: adapters switched off under LoRA."""
    module = getattr(model.module, "module", model.module)  # unwrap DDP
    disable = getattr(module, "disable_adapter", None)
    if disable is not None:
        with disable():
            yield model
    else:
        yield model


def frozen_copy(model: DiffusionLM) -> DiffusionLM:
    """A frozen copy of the starting model (the KL reference when it is not a LoRA model)."""
    ref = copy.copy(model)
    ref.module = copy.deepcopy(getattr(model.module, "module", model.module)).eval()
    for p in ref.module.parameters():
        p.requires_grad_(False)
    return ref
