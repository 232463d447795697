"""Character tokenizer of the built-in tiny models (docs/method.md section 9: synthetic tasks only).

Written by hand because the synthetic tasks need one token per character (a Sudoku cell, a
digit, an operator) and a fixed, tiny vocabulary; no library tokenizer gives that without
training one. Special tokens come first so their ids are stable.
"""

from __future__ import annotations

import json
from pathlib import Path

from mro.errors import MroError

SPECIAL_TOKENS = ("<pad>", "<mask>", "<eos>", "<bos>")
DEFAULT_CHARS = " 0123456789+-*/()=,.:;<>|#?abcdefghijklmnopqrstuvwxyz"


class CharTokenizer:
    """Maps characters to ids; ``<pad>``, ``<mask>``, ``<eos>``, ``<bos>`` are ids 0-3."""

    def __init__(self, chars: str = DEFAULT_CHARS):
        if len(set(chars)) != len(chars):
            raise MroError("tokenizer characters must be unique")
        self.chars = chars
        self.itos = list(SPECIAL_TOKENS) + list(chars)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.pad_token_id = 0
        self.mask_token_id = 1
        self.eos_token_id = 2
        self.bos_token_id = 3

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise MroError(f"character {e.args[0]!r} is not in the tiny tokenizer's vocabulary") from None

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i < len(SPECIAL_TOKENS):
                if skip_special_tokens:
                    continue
                out.append(self.itos[i])
            elif 0 <= i < len(self.itos):
                out.append(self.itos[i])
        return "".join(out)

    def save(self, folder: str | Path) -> None:
        Path(folder, "tokenizer.json").write_text(json.dumps({"type": "char", "chars": self.chars}))

    @classmethod
    def load(cls, folder: str | Path) -> "CharTokenizer":
        from mro.io import read_json

        path = Path(folder, "tokenizer.json")
        if not path.is_file():
            raise MroError(f"missing tokenizer file {path}")
        data = read_json(path, "tokenizer file")
        chars = data.get("chars") if isinstance(data, dict) else None
        if not isinstance(chars, str) or not chars:
            raise MroError(f"tokenizer file {path} has no 'chars' text (expected {{\"type\": \"char\", \"chars\": ...}})")
        return cls(chars)
