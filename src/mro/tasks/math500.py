"""MATH500: competition maths with LaTeX answers (docs/method.md section 8).

Data: ``HuggingFaceH4/MATH-500`` (split ``test``) from the hub, or a local file with columns
``problem`` and ``answer`` (``solution``, ``subject``, ``level``, ``unique_id`` kept when present).
Checking: ``math-verify`` in a worker process with a hard timeout
(:func:`mro.tasks.checkers.math_equal`), so ``\\frac{1}{2}`` and ``0.5`` are equal.
"""

from __future__ import annotations

from mro.tasks.base import Example, register_task
from mro.tasks.checkers import MATH_TIMEOUT, boxed, math_equal, math_span
from mro.tasks.text import TextTask

_KEEP = ("solution", "subject", "level")


@register_task
class Math500Task(TextTask):
    """MATH500; the reference answer is the LaTeX string of the data set."""

    name = "math500"
    columns = ("problem", "answer")
    hub = ("HuggingFaceH4/MATH-500", None, "test")

    def __init__(self, timeout: float = MATH_TIMEOUT):
        self.timeout = timeout

    def example(self, row: dict, index: int, source: str) -> Example:
        data = {k: row[k] for k in _KEEP if k in row}
        return Example(id=str(row.get("unique_id") or f"{source}-{index}"), question=str(row["problem"]),
                       answer=str(row["answer"]), data=data)

    def extract(self, response: str) -> str | None:
        """The answer text: a ``\\boxed{}`` in the answer span, else the span itself."""
        span = math_span(response).strip()
        inside = boxed(span)
        text = inside if inside is not None else span.strip("$").strip()
        return text or None

    def score(self, example: Example, response: str) -> dict[str, float]:
        """``accuracy``: math-verify equality (a timeout counts as wrong); ``format``: ``format_ok``."""
        return {"accuracy": float(math_equal(example.answer, response, timeout=self.timeout)),
                "format": self.format_score(response)}

    def same_answer(self, a: str | None, b: str | None) -> bool:
        """Equal strings, or equal for math-verify (``\\frac{1}{2}`` and ``0.5``)."""
        if a is None or b is None:
            return False
        return a == b or math_equal(a, f"<answer>{b}</answer>", timeout=self.timeout)
