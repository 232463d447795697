"""Decoding methods behind one interface, selectable by name (``mro eval --decode NAME``).

A decoder takes a laid-out batch and returns the chosen trajectory per row plus its cost
(DLM forward passes per row). ``vanilla`` is the plain sampler; test-time scaling methods
(docs/method.md section 5) register here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from mro.errors import MroError
from mro.models.base import DiffusionLM
from mro.sampling import DecodeConfig, Trajectory, generate


@dataclass
class DecodeResult:
    """What a decoder returns for a batch."""

    trajectory: Trajectory
    #: DLM forward passes spent per row (a CFG forward counts twice)
    nfe: list[float]
    #: scorer (reward model) forward passes per row
    scorer_calls: list[float] = field(default_factory=list)
    #: per-row details worth keeping (e.g. candidate scores)
    details: list[dict] = field(default_factory=list)


Decoder = Callable[..., DecodeResult]
_DECODERS: dict[str, Decoder] = {}


def register_decoder(name: str):
    def wrap(fn: Decoder) -> Decoder:
        _DECODERS[name] = fn
        return fn
    return wrap


def decoder_names() -> list[str]:
    return sorted(_DECODERS)


def get_decoder(name: str) -> Decoder:
    if name not in _DECODERS:
        raise MroError(f"unknown decode method {name!r}; choose from {', '.join(decoder_names())}")
    return _DECODERS[name]


@register_decoder("vanilla")
def vanilla(model: DiffusionLM, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]] | None,
            cfg: DecodeConfig, generator: torch.Generator | None = None, **_) -> DecodeResult:
    """Plain LLaDA decoding. Under threshold decoding a row costs the steps at which it committed
    something (what decoding it alone takes; in a batch it idles while other rows finish a block)."""
    traj = generate(model, prompts, cfg, responses=responses, generator=generator)
    per_forward = 2 if cfg.cfg_scale > 0 else 1
    if cfg.threshold is None:
        steps = [float(traj.steps_done)] * traj.batch_size
    else:
        ran = torch.arange(traj.steps_done, device=traj.commit_step.device)
        steps = (traj.commit_step[:, :, None] == ran).any(1).sum(-1).float().tolist()
    return DecodeResult(trajectory=traj, nfe=[s * per_forward for s in steps], scorer_calls=[0.0] * traj.batch_size)
