"""Tasks: where examples come from, how a model sees them, and how answers are judged.

A task owns its prompt format, its answer extraction and its verifier (docs/method.md section 8). The
built-in tiny models read a task through ``tiny_input``/``tiny_target`` (character layout, the
response region possibly pre-filled, as for Sudoku infilling); text models (later: LLaDA, Dream)
read ``question`` through a protocol's prompt template.

Held-out data: generators split the space of problems by a stable hash of the problem, so the
training stream never emits a test problem (``split="train"`` vs ``split="test"``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from mro.tasks.example import Example, TinyInput, heldout_bucket, last_answer_block, tiny_batch
from mro.tasks.protocols import build_prompt
from mro.tasks.registry import get_task, register_task, task_names

__all__ = ["Example", "Task", "TinyInput", "get_task", "heldout_bucket", "last_answer_block", "register_task",
           "task_names", "tiny_batch"]


class Task(ABC):
    """A task: data, layout for tiny models, answer extraction and scoring."""

    name: str = ""
    #: metric names reported by :meth:`score`; the first is the primary one.
    metrics: tuple[str, ...] = ()
    #: response length of the built-in tiny model's layout.
    tiny_gen_length: int = 0
    #: generator options (``k=v,...``) of the problems trainers and analyses draw when none are given
    default_options: str = ""

    @abstractmethod
    def generate(self, n: int, seed: int, split: str = "test", **options) -> list[Example]:
        """``n`` problems from the generator, deterministic in ``seed``, from one split."""

    @abstractmethod
    def load(self, path: str) -> list[Example]:
        """Read a data file; a malformed row raises ``MroError`` naming the file and line."""

    @abstractmethod
    def tiny_input(self, example: Example, tokenizer) -> TinyInput:
        """The example as the tiny model sees it before decoding (masks where to generate)."""

    @abstractmethod
    def tiny_target(self, example: Example, tokenizer) -> TinyInput:
        """The example with a reference response filled in (for SFT)."""

    @abstractmethod
    def extract(self, response: str) -> Any | None:
        """Parse the answer out of a response; ``None`` when there is none."""

    @abstractmethod
    def score(self, example: Example, response: str) -> dict[str, float]:
        """Metrics of one response (every name in ``metrics``), each in [0, 1]."""

    def prompt(self, example: Example, protocol: str = "mro",
               shots: list[Example] | None = None) -> tuple[str | None, str]:
        """``(system, user)`` text prompt for text models under an evaluation protocol (``d1`` or
        ``mro``, :mod:`mro.tasks.protocols`); ``shots`` default to the protocol's built-in ones."""
        return build_prompt(self, example, protocol, shots)

    def format_score(self, response: str) -> float:
        """Format term of the quality reward (docs/method.md section 3), in [0, 1].

        Default: 1.0 when an answer can be extracted, else 0.0; tasks override it.
        """
        return 1.0 if self.extract(response) is not None else 0.0

    def potential(self, example: Example, state: str) -> float:
        """The SGRO potential ``Phi`` of an intermediate state (docs/method.md section 4), in [0, 1].

        ``state`` is the state's response text (masks dropped, or written as :attr:`hole` where
        the task has one). Default: the primary metric of that text, i.e. the quality reward's
        correctness, which an unfinished state rarely earns.
        """
        return float(self.score(example, state)[self.metrics[0]]) if state else 0.0

    def same_answer(self, a: Any, b: Any) -> bool:
        """Whether two extracted answers are the same (majority vote, test-time ``R_q``)."""
        return a == b
