"""The model protocol every backend implements (docs/method.md section 2).

A diffusion LM here is anything that maps token ids (+ attention mask) to logits aligned with
the input: ``logits[:, i]`` is the distribution of the token at position ``i``. Backends whose
network predicts the next position (Dream) shift in their adapter, so the sampler, the rewards
and the trainers never see the difference. Token ids of specials (mask, EOS, pad) come from the
model's own config or tokenizer, never from a default here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

import torch

from mro.errors import MroError


class Tokenizer(Protocol):
    """What the package needs of a tokenizer."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids, skip_special_tokens: bool = True) -> str: ...


@dataclass
class KVCache:
    """Every layer's keys and values from one full forward (docs/method.md section 2, KV cache).

    ``keys[i]`` and ``values[i]`` are ``[B, H_kv, L, head_dim]`` for layer ``i`` over the whole
    sequence ``L`` (prompt + response) as it stood when the cache was filled. A windowed forward
    (:meth:`DiffusionLM.window_logits`) recomputes the positions of its window and reads every
    other position's keys and values from here; the cache itself is never modified by it.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @property
    def batch_size(self) -> int:
        return int(self.keys[0].shape[0])

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[2])

    def rows(self, index: torch.Tensor) -> "KVCache":
        """The cache of rows ``index`` (a row may repeat: k candidates share one prefix)."""
        return KVCache([k.index_select(0, index) for k in self.keys],
                       [v.index_select(0, index) for v in self.values])


class DiffusionLM(ABC):
    """A masked diffusion LM: ids in, position-aligned logits out.

    Attributes:
        name: how the model was named when loaded (hub id, path or built-in name).
        module: the ``torch.nn.Module`` holding the parameters (what trainers optimise).
        tokenizer: encodes prompts and decodes responses.
        mask_token_id: the id that marks a position still to be decoded.
        eos_token_id: end of sequence (``None`` when the model has none).
        pad_token_id: the id of left padding (never attended to).
    """

    name: str
    module: torch.nn.Module
    tokenizer: Tokenizer
    mask_token_id: int
    eos_token_id: int | None
    pad_token_id: int

    @abstractmethod
    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return ``[batch, length, vocab]`` logits aligned with ``input_ids``."""

    def logits_at(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                  positions: torch.Tensor) -> torch.Tensor:
        """``[B, V]`` logits of one position per row (``positions [B]``).

        What token verification needs; backends may compute only that position's last layer.
        """
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        return self.logits(input_ids, attention_mask)[rows, positions]

    #: whether :meth:`logits_and_cache` and :meth:`window_logits` are implemented
    supports_kv_cache: bool = False

    def logits_and_cache(self, input_ids: torch.Tensor,
                         attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache]:
        """One full forward: ``[B, L, V]`` logits (as :meth:`logits`) and every layer's keys/values."""
        raise MroError(f"model {self.name} cannot cache keys and values; decode with cache none")

    def window_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, cache: KVCache,
                      start: int, end: int, logits_end: int | None = None) -> torch.Tensor:
        """Logits of positions ``start .. logits_end - 1`` (default ``end``), computing the hidden
        states of the window ``start .. end - 1`` only.

        ``input_ids`` and ``attention_mask`` are the whole ``[B, L]`` sequence (``cache.length ==
        L``); the window's keys and values are computed from ``input_ids[:, start:end]``, every
        other position's are read from ``cache``. The window's queries attend to all ``L`` keys
        under ``attention_mask`` exactly as in :meth:`logits`, with absolute positions. With a
        cache filled from the same ``input_ids`` the result equals ``logits(...)[:, start:end]``
        (up to floating-point error). Returns ``[B, logits_end - start, V]``.
        """
        raise MroError(f"model {self.name} cannot cache keys and values; decode with cache none")

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Size of the last dimension of :meth:`logits`."""

    def encode_prompt(self, user: str, system: str | None = None, prefix: str = "") -> list[int]:
        """Prompt ids of a (system, user) prompt plus the text the response starts with.

        This default joins ``system`` and ``user`` with a blank line and calls
        ``tokenizer.encode``; backends with chat templates override it (``HFDiffusionLM``).
        """
        text = f"{system}\n\n{user}" if system else user
        return list(self.tokenizer.encode(text + prefix))

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.module.parameters()).dtype

    def describe(self) -> dict:
        """What a result records about the model."""
        n = sum(p.numel() for p in self.module.parameters())
        return {"name": self.name, "parameters": n, "dtype": str(self.dtype).replace("torch.", ""),
                "device": str(self.device)}
