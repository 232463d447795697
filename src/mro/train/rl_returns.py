"""SGRO returns of RL rollouts, term by term (docs/method.md section 7).

A rollout's return per step group is a sum of parts, one per reward term: ``tv`` and ``ppl``
(intra, read per group, or once on the finished response under ``judge: final``), ``q`` (the
answer, on the last group; against the reference, or under ``labels: vote`` against the majority
answer of the problem's K rollouts), and ``shaping`` (``lam * Phi(end) - Phi(start)`` per group).
Keeping the parts apart lets the trainer scale each intra term by its running within-problem
spread (``intra_scale: spread``) and log what each term contributes to the advantage.

Under ``credit: to-go`` every part is summed from its group to the last (the policy gradient of
the cumulative return credits each step with its return-to-go); under ``credit: group`` each
group keeps its own, and a terminal judgement is added to every group, so it still reaches
every step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from mro.rewards.multi import MultiReward
from mro.rewards.sgro import group_bounds
from mro.sampling.trajectory import Trajectory

INTRA = ("tv", "ppl")


@dataclass
class Pieces:
    """The unweighted reward terms of a batch of rollouts, before weighting, scaling and credit."""

    intra: dict[str, torch.Tensor]   # {name: [N, n_groups]} (judge steps) or [N, 1] (judge final)
    q: torch.Tensor | None           # [N] R_q, unweighted (None: off)
    shaping: torch.Tensor | None     # [N, n_groups] lam * Phi(end) - Phi(start) (None: off)
    correct: torch.Tensor            # [N] correctness against the reference (always measured; trained on
                                     # only through q under labels: reference)
    other_tv: torch.Tensor | None    # [N, n] R_tv of the other verifier on the same positions (logged only)
    n_groups: int


def _reading(rl_ref, which: str):
    """A context giving the model that reads ``R_tv``: None (the policy) or the frozen reference."""
    from mro.train.rl_objective import reference_policy

    if which == "reference" and rl_ref is not None:
        return reference_policy(rl_ref)
    return contextlib.nullcontext(None)


def score_pieces(reward: MultiReward, task, examples, traj: Trajectory, cfg, generator: torch.Generator,
                 ref=None) -> Pieces:
    """Read every reward term of the rollouts once (docs/method.md section 7).

    ``ref``: the frozen starting model (``verifier: reference`` reads ``R_tv`` with it; when both
    models exist, the other verifier is read on the same positions for the log).
    """
    bounds = group_bounds(traj.steps_done, cfg.w)
    judged = [(0, traj.steps_done)] if cfg.judge == "final" else bounds
    intra: dict[str, torch.Tensor] = {}
    other = None
    if reward.weights.on("intra"):
        state = generator.get_state()
        with _reading(ref, cfg.verifier) as verifier, reward.verified_by(verifier):
            intra = reward.intra_terms(traj, judged, generator=generator)
        if "tv" in intra and ref is not None:  # the other verifier, same positions drawn
            replay = torch.Generator(device=generator.device)
            replay.set_state(state)
            other_name = "policy" if cfg.verifier == "reference" else "reference"
            from mro.rewards.verification import token_verification

            with _reading(ref, other_name) as verifier:
                model = verifier or reward.model
                other = token_verification(model, traj, judged, reward.tv_tokens, generator=replay,
                                           use_cache=verifier is None).nan_to_num(0.0)
    texts = reward.texts(traj)
    correct = torch.tensor([float(task.score(ex, t)[task.metrics[0]]) for ex, t in zip(examples, texts)])
    q = None
    if reward.weights.w_q:
        targets = reward.vote_targets(texts, cfg.rollouts) if cfg.labels == "vote" else None
        q = reward.quality(texts, targets=targets, examples=examples)
    shaping = None
    if cfg.shaping:
        phi = reward.potentials(traj, [0] + [e for _, e in bounds], examples)
        shaping = cfg.lam * phi[:, 1:] - phi[:, :-1]
    dev = traj.tokens.device
    return Pieces({k: v.to(dev) for k, v in intra.items()}, None if q is None else q.to(dev),
                  None if shaping is None else shaping.to(dev), correct.to(dev),
                  None if other is None else other.to(dev), len(bounds))


def trajectory_totals(p: Pieces) -> dict[str, torch.Tensor]:
    """``{term: [N]}``: each term's unweighted sum over the trajectory (what its spread is of)."""
    out = {name: v.sum(1) for name, v in p.intra.items()}
    if p.q is not None:
        out["q"] = p.q
    if p.shaping is not None:
        out["shaping"] = p.shaping.sum(1)
    return out


def combine(p: Pieces, cfg, weights, factors: dict[str, float] | None = None) -> tuple[torch.Tensor, dict]:
    """``(returns [N, n_groups], parts)``: the weighted (and, with ``factors``, scaled) terms laid on
    their groups and credited (``to-go`` or ``group``); ``parts[name]`` sums to ``returns``."""
    n, g = p.correct.shape[0], p.n_groups
    dev = p.correct.device
    parts: dict[str, torch.Tensor] = {}
    for name, v in p.intra.items():
        w = weights[name] * (factors or {}).get(name, 1.0)
        if v.shape[1] == g and cfg.judge == "steps":
            parts[name] = w * v
        else:  # a terminal judgement: on the last group (to-go carries it to every step) or on every group
            laid = torch.zeros(n, g, device=dev)
            if cfg.credit == "to-go":
                laid[:, -1] = v[:, 0]
            else:
                laid[:] = v[:, :1]
            parts[name] = w * laid
    if p.q is not None:
        laid = torch.zeros(n, g, device=dev)
        laid[:, -1] = weights.w_q * p.q
        parts["q"] = laid
    if p.shaping is not None:
        parts["shaping"] = p.shaping
    if cfg.credit == "to-go":
        parts = {k: v.flip(1).cumsum(1).flip(1) for k, v in parts.items()}
    returns = torch.zeros(n, g, device=dev)
    for v in parts.values():
        returns = returns + v
    return returns, parts


def within_problem_std(x: torch.Tensor, k: int) -> float:
    """Mean over problems of the std of ``x [N]`` over each problem's ``k`` rollouts."""
    if k < 2:
        return 0.0
    return float(x.view(-1, k).std(1).mean())


def within_problem_corr(x: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """Mean over problems (where both vary) of the Pearson correlation of ``x`` and ``y`` over the
    problem's ``k`` rollouts; 0 when no problem has both varying (every process logs every key)."""
    if k < 2:
        return 0.0
    a, b = x.view(-1, k).double(), y.view(-1, k).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    den = (a.square().sum(1) * b.square().sum(1)).sqrt()
    ok = den > 1e-12
    if not bool(ok.any()):
        return 0.0
    return float(((a * b).sum(1)[ok] / den[ok]).mean())


def advantage_shares(parts: dict[str, torch.Tensor], adv: torch.Tensor, k: int, baseline: str) -> dict[str, float]:
    """The share of the advantage's variance each part contributes: ``Cov(A_term, A) / Var(A)``
    over every (rollout, group) entry, ``A_term`` the part less the same baseline. The shares sum
    to 1 (the advantage is the sum of the parts' advantages)."""
    total = adv - adv.mean()
    var = float(total.square().mean())
    out = {}
    for name, v in parts.items():
        if baseline == "group":
            per = v.view(-1, k, v.shape[1])
            a = (per - per.mean(1, keepdim=True)).view_as(v)
        elif baseline == "batch":
            a = v - v.mean(0, keepdim=True)
        else:
            a = v
        out[name] = float(((a - a.mean()) * total).mean() / var) if var > 1e-12 else 0.0
    return out


class SpreadScaler:
    """``intra_scale: spread``: each intra term divided by its running within-problem spread and
    multiplied by ``R_q``'s, so a weight of 0.5 means "half of ``R_q``'s spread" (docs/method.md
    section 7). Exponential running means (``decay``), first values taken as they are; its state
    is checkpointed, so a resumed run scales as the uninterrupted one would."""

    def __init__(self, decay: float = 0.9, state: dict | None = None):
        self.decay = decay
        self.spread: dict[str, float] = dict((state or {}).get("spread", {}))

    def update(self, spreads: dict[str, float]) -> dict[str, float]:
        """Fold in this update's spreads; return the factor of each intra term."""
        for name, s in spreads.items():
            old = self.spread.get(name)
            self.spread[name] = s if old is None else self.decay * old + (1 - self.decay) * s
        scale_q = self.spread.get("q", 1.0)
        return {name: scale_q / max(self.spread[name], 1e-4) for name in INTRA if name in self.spread}

    def state(self) -> dict:
        return {"spread": dict(self.spread)}
