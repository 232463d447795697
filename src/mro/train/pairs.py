"""SFT data of any backend: prompt/response pairs from a JSONL or Parquet file (docs/method.md
section 1, "SFT of any backend").

Each prompt goes through the model's chat template (``DiffusionLM.encode_prompt``: the tokenizer's
template when it has one, with the generation prompt), each response is tokenized and ends with
EOS. A batch lays the prompts out left-padded and the responses right-padded with EOS to the
batch's longest, as LLaDA's SFT does: the padding EOS tokens are part of the response, masked and
predicted like the rest; the prompt is never masked.
"""

from __future__ import annotations

import torch

from mro.errors import MroError
from mro.models.base import DiffusionLM
from mro.models.tokenizer import CharTokenizer
from mro.sampling.batch import layout
from mro.tasks.text import read_rows


def read_pairs(path: str, prompt_column: str, response_column: str) -> list[tuple[str, str]]:
    """``(prompt, response)`` texts of a data file (JSONL, JSON, Parquet or CSV); a missing column or
    an empty or non-text cell is a one-line error naming the file and row."""
    rows = read_rows(path, (prompt_column, response_column), "SFT")
    pairs = []
    for i, row in enumerate(rows, 1):
        prompt, response = row[prompt_column], row[response_column]
        if not (isinstance(prompt, str) and isinstance(response, str) and prompt.strip() and response.strip()):
            raise MroError(f"{path}: row {i} has no text in {prompt_column!r} or {response_column!r}")
        pairs.append((prompt, response))
    if not pairs:
        raise MroError(f"{path} holds no prompt/response pairs")
    return pairs


def encode_pairs(model: DiffusionLM, pairs: list[tuple[str, str]], system: str | None = None,
                 max_length: int | None = None) -> list[tuple[list[int], list[int]]]:
    """Prompt ids (chat template applied) and response ids (ending with EOS) of each pair; a pair
    longer than ``max_length`` tokens keeps its prompt and the start of its response."""
    if model.eos_token_id is None:
        raise MroError(f"SFT on prompt/response pairs needs a model with an EOS token; {model.name} has none")
    tok = model.tokenizer
    out = []
    for i, (prompt, response) in enumerate(pairs, 1):
        p = model.encode_prompt(prompt, system)
        r = tok.encode(response) if isinstance(tok, CharTokenizer) else tok.encode(response, add_special_tokens=False)
        r = list(r) + [model.eos_token_id]
        if max_length is not None:
            if len(p) >= max_length:
                raise MroError(f"pair {i}: its prompt alone has {len(p)} tokens, max_length is {max_length}")
            r = r[:max_length - len(p)]
        out.append((p, r))
    return out


def pair_batch(encoded: list[tuple[list[int], list[int]]], pad_id: int, eos_id: int):
    """``(tokens, maskable, attention_mask)`` of a batch: prompts left-padded, responses padded with EOS."""
    width = max(len(r) for _, r in encoded)
    tokens, attn, p = layout([e[0] for e in encoded], [r + [eos_id] * (width - len(r)) for _, r in encoded], pad_id)
    maskable = torch.zeros_like(tokens, dtype=torch.bool)
    maskable[:, p:] = True
    return tokens, maskable, attn


class PairOrder:
    """Which pairs make each step: a fresh seeded permutation of the pairs every epoch."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self._perms: dict[int, list[int]] = {}

    def rows(self, step: int, batch_size: int) -> list[int]:
        out = []
        for pos in range(step * batch_size, (step + 1) * batch_size):
            epoch = pos // self.n
            if epoch not in self._perms:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                self._perms = {epoch: torch.randperm(self.n, generator=g).tolist()}
            out.append(self._perms[epoch][pos % self.n])
        return out
