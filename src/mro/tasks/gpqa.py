"""GPQA: graduate-level multiple choice, subsets ``diamond`` (198) and ``main`` (448).

Data: ``Idavidrein/gpqa`` (configs ``gpqa_diamond`` / ``gpqa_main``, split ``train``; gated) from the
hub, or a local file with the data set's columns ``Question``, ``Correct Answer`` and
``Incorrect Answer 1-3``. The four choices are shuffled per question with a fixed seed
(``random.Random(f"{choice_seed}:{record id or question}")``), so the letter of the correct choice
is the same in every run and on every process. Checking: letter match.
"""

from __future__ import annotations

import random

from mro.errors import MroError
from mro.tasks.base import Example, register_task
from mro.tasks.checkers import letter_extract
from mro.tasks.text import TextTask

LETTERS = "ABCD"
SUBSETS = ("diamond", "main")
_CHOICES = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


def format_question(question: str, choices: list[str]) -> str:
    """The question followed by ``A) ...`` to ``D) ...`` lines."""
    lines = [f"{letter}) {choice}" for letter, choice in zip(LETTERS, choices)]
    return question.strip() + "\n\n" + "\n".join(lines)


@register_task
class GPQATask(TextTask):
    """GPQA; the reference answer is the letter of the correct choice after shuffling."""

    name = "gpqa"
    columns = ("Question",) + _CHOICES

    def __init__(self, subset: str = "diamond", choice_seed: int = 0):
        if subset not in SUBSETS:
            raise MroError(f"unknown gpqa subset {subset!r}; choose from {', '.join(SUBSETS)}")
        self.subset, self.choice_seed = subset, choice_seed
        self.hub = ("Idavidrein/gpqa", f"gpqa_{subset}", "train")

    def example(self, row: dict, index: int, source: str) -> Example:
        question = str(row["Question"]).strip()
        choices = [str(row[c]).strip() for c in _CHOICES]
        record = row.get("Record ID") or question
        order = list(range(4))
        random.Random(f"{self.choice_seed}:{record}").shuffle(order)
        shuffled = [choices[i] for i in order]
        letter = LETTERS[order.index(0)]
        return Example(id=str(row.get("Record ID") or f"{source}-{index}"),
                       question=format_question(question, shuffled), answer=letter,
                       data={"choices": shuffled, "subset": self.subset})

    def extract(self, response: str) -> str | None:
        return letter_extract(response)

    def score(self, example: Example, response: str) -> dict[str, float]:
        """``accuracy``: the chosen letter is the correct one; ``format``: ``format_ok``."""
        return {"accuracy": float(self.extract(response) == example.answer),
                "format": self.format_score(response)}
