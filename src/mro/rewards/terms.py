"""The reward terms and their weights (docs/method.md section 3, "Combination").

Every reward is a registered term: ``tv`` (``R_tv``) and ``ppl`` (``R_ppl``) are *intra* terms,
scored per step group of a trajectory; ``q`` (``R_q``) is the *inter* term, scored on final
responses. :class:`mro.rewards.multi.MultiReward` sums the terms by weight, and ``--rewards``
names them (``"tv,ppl,q"``, ``"tv=1,q=0.5"``; unlisted = weight 0, off: an off term is never
computed). A fourth reward is one more ``@register_reward`` function in this file.

An intra term is ``score(reward, traj, bounds, generator) -> [B, len(bounds)]`` (``bounds``: the
step groups ``(start, end)``); an inter term is ``score(reward, texts, targets, examples) -> [B]``
(``targets``: the majority-vote answers at test time, else None; ``examples``: the references at
training time). ``reward`` is the :class:`~mro.rewards.multi.MultiReward` scoring them (model,
task, settings, scorer and cost counters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from mro.errors import MroError

KINDS = ("intra", "inter")


@dataclass(frozen=True)
class RewardTerm:
    """One reward: its name in ``--rewards``, its kind and how to score it."""

    name: str
    kind: str
    score: Callable
    #: the term reads the PPL scorer (``MultiReward`` loads one only when such a term is on)
    needs_scorer: bool = False


_TERMS: dict[str, RewardTerm] = {}


def register_reward(name: str, kind: str, needs_scorer: bool = False):
    """Decorator: register ``score`` as the reward term ``name`` (``kind`` intra or inter)."""
    if kind not in KINDS:
        raise ValueError(f"reward kind must be one of {KINDS}, got {kind!r}")

    def wrap(score: Callable) -> Callable:
        _TERMS[name] = RewardTerm(name, kind, score, needs_scorer)
        return score
    return wrap


def reward_terms(kind: str | None = None) -> list[RewardTerm]:
    """The registered terms (of one kind), in registration order."""
    return [t for t in _TERMS.values() if kind is None or t.kind == kind]


def check_weight(name: str, value) -> float:
    """``value`` as a float; anything that is not a finite real number is a one-line ``MroError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MroError(f"reward weight {name} must be a finite number, got {value!r}")
    return float(value)


class RewardWeights:
    """The weight of every registered term (1 each by default; 0 switches a term off).

    Positional weights follow the registration order (``tv``, ``ppl``, ``q``); keywords and
    attributes are ``w_<name>`` (``w_tv``, ``w_ppl``, ``w_q``); ``weights[name]`` reads one too.
    """

    def __init__(self, *weights, **named):
        names = [t.name for t in reward_terms()]
        if len(weights) > len(names):
            raise MroError(f"{len(weights)} reward weights given for {len(names)} rewards ({', '.join(names)})")
        values = {n: 1.0 for n in names} | dict(zip(names, weights))
        for key, value in named.items():
            if not key.startswith("w_") or key[2:] not in values:
                raise MroError(f"unknown reward weight {key!r}; known: {', '.join('w_' + n for n in names)}")
            values[key[2:]] = value
        self._w = {n: check_weight(f"w_{n}", v) for n, v in values.items()}

    def __getitem__(self, name: str) -> float:
        return self._w.get(name, 0.0)

    def __getattr__(self, attr: str) -> float:
        if attr.startswith("w_") and attr[2:] in self.__dict__.get("_w", {}):
            return self._w[attr[2:]]
        raise AttributeError(attr)

    def __eq__(self, other) -> bool:
        return isinstance(other, RewardWeights) and self._w == other._w

    def __repr__(self) -> str:
        return "RewardWeights(" + ", ".join(f"w_{n}={v:g}" for n, v in self._w.items()) + ")"

    def on(self, kind: str | None = None) -> list[tuple[RewardTerm, float]]:
        """``(term, weight)`` of every term (of one kind) whose weight is not 0."""
        return [(t, self._w[t.name]) for t in reward_terms(kind) if self._w.get(t.name, 0.0) != 0.0]


def parse_rewards(spec: str) -> RewardWeights:
    """Weights from a comma list such as ``"tv,ppl,q"`` or ``"tv=1,q=0.5"``.

    A listed name without a value gets weight 1; an unlisted one gets 0 (off). An unknown name, a
    repeated name or a value that is not a number is a one-line ``MroError``.
    """
    names = [t.name for t in reward_terms()]
    known = ", ".join(names)
    items = [item.strip() for item in str(spec).split(",") if item.strip()]
    if not items:
        raise MroError(f"no reward named in {spec!r}; known rewards: {known}")
    values: dict[str, float] = {}
    for item in items:
        name, _, raw = item.partition("=")
        name = name.strip()
        if name not in names:
            raise MroError(f"unknown reward {name!r}; known rewards: {known}")
        if name in values:
            raise MroError(f"reward {name!r} is given twice in {spec!r}")
        if not raw.strip():
            values[name] = 1.0
            continue
        try:
            values[name] = float(raw)
        except ValueError:
            raise MroError(f"reward weight w_{name} must be a finite number, got {raw.strip()!r}") from None
    return RewardWeights(**{f"w_{n}": values.get(n, 0.0) for n in names})


# --- the terms --------------------------------------------------------------------------------

@register_reward("tv", "intra")
def _token_verification(reward, traj, bounds, generator) -> torch.Tensor:
    """``R_tv`` (docs/method.md section 3): leave-one-out log-probability of committed tokens."""
    from mro.rewards.verification import committed_in_groups, token_verification

    tv = token_verification(reward.verifier, traj, bounds, reward.tv_tokens, generator=generator,
                            use_cache=reward.verifier_shares_cache)
    committed = committed_in_groups(traj, bounds).sum(-1)
    per = committed if reward.tv_tokens == "all" else committed.clamp(max=reward.tv_tokens)
    reward.dlm_forwards += int(per.sum())
    return tv.nan_to_num(0.0)  # a group that committed nothing (threshold decoding) adds nothing


@register_reward("ppl", "intra", needs_scorer=True)
def _perplexity(reward, traj, bounds, generator) -> torch.Tensor:
    """``R_ppl`` (docs/method.md section 3) of the state at the end of each group."""
    from mro.rewards.perplexity import perplexity_rewards

    at = [e for _, e in bounds]
    reward.scorer_texts += traj.batch_size * len(at)
    return perplexity_rewards(reward.scorer, reward.model, traj, at, reward.cfg.ppl_upper, reward.cfg.ppl_scale)


@register_reward("q", "inter")
def _quality(reward, texts, targets, examples) -> torch.Tensor:
    """``R_q`` (docs/method.md section 3): correctness against the reference (training) or the
    majority-vote target (test time; none when no candidate had an answer), plus the format."""
    from mro.rewards.quality import quality_reward

    cfg, out = reward.cfg, []
    for i, text in enumerate(texts):
        if targets is not None and targets[i] is None:  # no candidate had an answer: nothing to agree with
            out.append(quality_reward(reward.task, None, text, None, 0.0, cfg.format_weight))
            continue
        out.append(quality_reward(reward.task, examples[i] if examples else None, text,
                                  targets[i] if targets is not None else None, cfg.correct_weight, cfg.format_weight))
    return torch.tensor(out)
