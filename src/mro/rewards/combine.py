"""Weights of the multi-reward and the per-step combination (docs/method.md section 3, "Combination").

``R_t = w_tv * R_tv_t + w_ppl * R_ppl_t``, plus ``w_q * R_q`` at the final step; the paper uses
unit weights. A term is switched off by giving it weight 0: it then has no effect at all, even
when its values are missing (``None``) or NaN, and its reward need not be computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from mro.errors import MroError

#: reward names accepted by :func:`parse_rewards`, with the weight field each one sets.
REWARD_NAMES = {"tv": "w_tv", "ppl": "w_ppl", "q": "w_q"}


def check_weight(name: str, value) -> float:
    """``value`` as a float; anything that is not a finite real number is a one-line ``MroError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MroError(f"reward weight {name} must be a finite number, got {value!r}")
    return float(value)


@dataclass
class RewardWeights:
    """Weights of the token-verification, perplexity and quality rewards.

    Attributes:
        w_tv: weight of ``R_tv`` (intra, docs/method.md section 3); 0 switches it off.
        w_ppl: weight of ``R_ppl`` (intra); 0 switches it off.
        w_q: weight of ``R_q`` (inter, final step / majority-vote target); 0 switches it off.
    """

    w_tv: float = 1.0
    w_ppl: float = 1.0
    w_q: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, check_weight(f.name, getattr(self, f.name)))

    @property
    def enabled(self) -> dict[str, bool]:
        """``{"tv": ..., "ppl": ..., "q": ...}``: True for every term whose weight is not 0."""
        return {name: getattr(self, field) != 0.0 for name, field in REWARD_NAMES.items()}


def parse_rewards(spec: str) -> RewardWeights:
    """Weights from a comma list such as ``"tv,ppl,q"`` or ``"tv=1,q=0.5"``.

    A listed name without a value gets weight 1; an unlisted one gets 0 (off). An unknown name, a
    repeated name or a value that is not a number is a one-line ``MroError``.
    """
    known = ", ".join(REWARD_NAMES)
    items = [item.strip() for item in str(spec).split(",") if item.strip()]
    if not items:
        raise MroError(f"no reward named in {spec!r}; known rewards: {known}")
    values: dict[str, float] = {}
    for item in items:
        name, _, raw = item.partition("=")
        name = name.strip()
        if name not in REWARD_NAMES:
            raise MroError(f"unknown reward {name!r}; known rewards: {known}")
        if name in values:
            raise MroError(f"reward {name!r} is given twice in {spec!r}")
        if not raw.strip():
            values[name] = 1.0
            continue
        try:
            values[name] = float(raw)
        except ValueError:
            field = REWARD_NAMES[name]
            raise MroError(f"reward weight {field} must be a finite number, got {raw.strip()!r}") from None
    return RewardWeights(**{field: values.get(name, 0.0) for name, field in REWARD_NAMES.items()})


def _term(name: str, weight: float, values: torch.Tensor | None) -> torch.Tensor | None:
    """``weight * values``, or ``None`` when the term is off; an enabled term needs values."""
    if weight == 0.0:
        return None
    if values is None:
        raise MroError(f"reward {name!r} is enabled (weight {weight}) but no values were given")
    return weight * values


def step_rewards(
    r_tv: torch.Tensor | None,
    r_ppl: torch.Tensor | None,
    weights: RewardWeights,
    final_quality: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[B, T]`` combined step rewards ``w_tv * R_tv + w_ppl * R_ppl`` (docs/method.md section 3).

    ``r_tv``/``r_ppl`` are ``[B, T]`` (per step, or per SGRO group); a term whose weight is 0 counts
    0 whatever it holds (``None`` and NaN allowed). ``final_quality`` (``[B]``), when given and
    ``w_q != 0``, adds ``w_q * R_q`` to the last column.
    """
    terms = [_term("tv", weights.w_tv, r_tv), _term("ppl", weights.w_ppl, r_ppl)]
    shaped = [t for t in (r_tv, r_ppl) if t is not None]
    if not shaped:
        raise MroError("step_rewards needs r_tv or r_ppl (at least one tensor, for the shape)")
    if r_tv is not None and r_ppl is not None and r_tv.shape != r_ppl.shape:
        raise MroError(f"r_tv {tuple(r_tv.shape)} and r_ppl {tuple(r_ppl.shape)} differ in shape")
    like = shaped[0]
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    out = torch.zeros(like.shape, dtype=dtype, device=like.device)
    for term in terms:
        if term is not None:
            out = out + term
    q = _term("q", weights.w_q, final_quality) if final_quality is not None else None
    if q is not None and out.shape[1] > 0:
        out[:, -1] = out[:, -1] + q
    return out
