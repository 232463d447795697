"""The model protocol every backend implements (docs/method.md section 2).

A diffusion LM here is anything that maps token ids (+ attention mask) to logits aligned with
the input: ``logits[:, i]`` is the distribution of the token at position ``i``. Backends whose
network predicts the next position (Dream) shift in their adapter, so the sampler, the rewards
and the trainers never see the difference. Token ids of specials (mask, EOS, pad) come from the
model's own config or tokenizer, never from a default here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import torch


class Tokenizer(Protocol):
    """What the package needs of a tokenizer."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids, skip_special_tokens: bool = True) -> str: ...


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
