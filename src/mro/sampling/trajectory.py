"""The denoising trajectory (docs/method.md section 2): what was committed where, when and how surely.

For every response position: the step at which it was committed (``PREFILLED`` for positions
given in the input, ``PENDING`` while still masked), the token, the log-probability of that
token under the sampling distribution and its confidence. Steps count from 0, so the state
after ``t`` steps (the paper's ``r_{T-t}``) keeps exactly the positions with
``commit_step < t``; every intermediate state is rebuilt from final tokens + this map.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from mro.sampling.cache import BlockCache

PREFILLED = -1
PENDING = 2**31 - 1


@dataclass
class Trajectory:
    """A batch of (possibly unfinished) decodings.

    Attributes:
        tokens: ``[B, N]`` prompt + response; still-masked positions hold the mask id.
        attention_mask: ``[B, N]`` 1 for real tokens, 0 for left padding.
        prompt_length: ``P``; the response is ``tokens[:, P:]`` (``G`` positions).
        conditioned: ``[B, N]`` True where the input was not a mask at the start (prompt, its
            left padding, pre-filled response positions): what classifier-free guidance masks,
            as LLaDA's reference does.
        commit_step: ``[B, G]`` step of commitment, ``PREFILLED`` or ``PENDING``.
        logprob: ``[B, G]`` log-probability of the committed token under the sampling
            distribution (``softmax(logits / temperature)``; at temperature 0, ``softmax(logits)``);
            NaN where nothing was committed.
        confidence: ``[B, G]`` the remasking score that chose the position (NaN where none).
        steps_done: how many denoising steps have run.
        mask_token_id: the model's mask id.
        cache: the current block's KV cache while decoding with ``cache prefix|dual``
            (mro.sampling.cache), so that a resumed ``denoise`` and copies of a row reuse it;
            None otherwise (``generate`` drops it when decoding is over).
    """

    tokens: torch.Tensor
    attention_mask: torch.Tensor
    prompt_length: int
    conditioned: torch.Tensor
    commit_step: torch.Tensor
    logprob: torch.Tensor
    confidence: torch.Tensor
    steps_done: int
    mask_token_id: int
    cache: BlockCache | None = None

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    @property
    def gen_length(self) -> int:
        return self.commit_step.shape[1]

    @property
    def response(self) -> torch.Tensor:
        """``[B, G]`` response tokens (mask id where still pending)."""
        return self.tokens[:, self.prompt_length:]

    @property
    def done(self) -> bool:
        return not bool((self.commit_step == PENDING).any())

    def state(self, t: int) -> torch.Tensor:
        """``[B, N]`` the sequence after ``t`` steps (``0 <= t <= steps_done``)."""
        if not 0 <= t <= self.steps_done:
            raise ValueError(f"state {t} is outside 0..{self.steps_done}")
        out = self.tokens.clone()
        hidden = self.commit_step >= t
        out[:, self.prompt_length:][hidden] = self.mask_token_id
        return out

    def committed_at(self, t: int) -> torch.Tensor:
        """``[B, G]`` True at the positions committed by step ``t``."""
        return self.commit_step == t

    def commits_per_step(self) -> torch.Tensor:
        """``[B, steps_done]`` number of positions committed at each step."""
        steps = torch.arange(self.steps_done, device=self.commit_step.device)
        return (self.commit_step[:, None, :] == steps[None, :, None]).sum(-1)

    def clone(self) -> "Trajectory":
        return replace(self, **{k: getattr(self, k).clone() for k in _TENSORS})

    def index(self, rows: torch.Tensor | list[int]) -> "Trajectory":
        """Keep (or repeat) the given rows, in order."""
        rows = torch.as_tensor(rows, device=self.tokens.device, dtype=torch.long)
        cache = self.cache.rows(rows) if self.cache is not None else None
        return replace(self, cache=cache, **{k: getattr(self, k)[rows] for k in _TENSORS})

    def repeat_interleave(self, k: int) -> "Trajectory":
        """Each row ``k`` times in a row (row ``i`` -> rows ``i*k .. i*k+k-1``)."""
        rows = torch.arange(self.batch_size, device=self.tokens.device).repeat_interleave(k)
        return self.index(rows)


_TENSORS = ("tokens", "attention_mask", "conditioned", "commit_step", "logprob", "confidence")
