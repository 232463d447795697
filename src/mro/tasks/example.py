"""What a task's examples are made of (a leaf module: it imports nothing from ``mro.tasks``)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Example:
    """One problem.

    Attributes:
        id: stable identifier (unique within a data set).
        question: the problem as text.
        answer: the reference answer (what ``score`` compares against).
        data: task-specific fields (e.g. ``puzzle``/``solution`` or ``nums``/``target``).
    """

    id: str
    question: str
    answer: Any
    data: dict = field(default_factory=dict)


@dataclass
class TinyInput:
    """A problem laid out for a built-in character model.

    ``response_ids`` has the task's ``tiny_gen_length`` entries; positions to be generated hold
    ``mask_token_id``, pre-filled positions (Sudoku givens) hold their token.
    """

    prompt_ids: list[int]
    response_ids: list[int]


def tiny_batch(task: "Task", examples: list[Example], tokenizer) -> tuple[list[list[int]], list[list[int]]]:
    """Prompt ids and pre-filled responses of ``examples`` in the tiny models' layout."""
    laid = [task.tiny_input(ex, tokenizer) for ex in examples]
    return [x.prompt_ids for x in laid], [x.response_ids for x in laid]


def generation_bar(n: int, name: str):
    """A progress bar for generating ``n`` problems (shown from 10,000 on: that takes seconds to minutes)."""
    from tqdm import tqdm

    return tqdm(total=n, desc=f"generating {name} problems", unit="problem", disable=n < 10_000, leave=False)


def heldout_bucket(key: str, test_fraction: float = 0.1) -> bool:
    """True when a problem (by its canonical string) belongs to the held-out split."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return (h % 10_000) < int(test_fraction * 10_000)


_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def last_answer_block(response: str) -> str:
    """The content of the last ``<answer>...</answer>`` block, or the whole response."""
    blocks = _ANSWER_BLOCK.findall(response)
    return blocks[-1] if blocks else response
