"""Quality reward ``R_q`` (inter-sequence, docs/method.md section 3) and the majority-vote target.

``R_q = correct_weight * correctness + format_weight * format``:

- correctness, training time (reference known, ``target=None``): the task's primary metric
  (``task.score(example, response)[task.metrics[0]]``);
- correctness, test time (no reference): 1 when the extracted answer is the same as ``target``
  (the majority-vote answer over the candidates, docs/method.md section 3 **[choice]**) by ``task.same_answer``;
- format: ``task.format_score(response)`` (the task's own format; default: an answer extracts).

An empty (or ``None``) response has correctness 0 and format 0, so ``R_q = 0``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from mro.errors import MroError
from mro.rewards.terms import check_weight
from mro.tasks.base import Example, Task


def quality_reward(
    task: Task,
    example: Example | None,
    response: str | None,
    target: Any = None,
    correct_weight: float = 1.0,
    format_weight: float = 1.0,
) -> float:
    """``R_q`` of one response; ``example`` may be ``None`` when a ``target`` is given."""
    correct_weight = check_weight("correct_weight", correct_weight)
    format_weight = check_weight("format_weight", format_weight)
    if not response:
        return 0.0
    total = 0.0
    if correct_weight:
        total += correct_weight * _correctness(task, example, response, target)
    if format_weight:
        total += format_weight * float(_format_score(task, example, response))
    return total


def _format_score(task: Task, example: Example | None, response: str) -> float:
    """``task.format_score``, given the example too when the task's format depends on it
    (Countdown: an expression over the given numbers)."""
    import inspect

    if example is not None and "example" in inspect.signature(task.format_score).parameters:
        return task.format_score(response, example=example)
    return task.format_score(response)


def _correctness(task: Task, example: Example | None, response: str, target: Any) -> float:
    if target is not None:
        answer = task.extract(response)
        return float(answer is not None and task.same_answer(answer, target))
    if example is None:
        raise MroError("quality_reward needs an example (with its reference) or a target")
    return float(task.score(example, response)[task.metrics[0]])


def group_vote_targets(task: Task, answers: Sequence[Any], group: int) -> list[Any]:
    """Majority-vote answer of each consecutive block of ``group`` answers, repeated per member.

    Test-time scaling lays out ``k`` candidates per prompt as consecutive rows; each candidate's
    target is the vote of its own prompt's candidates.
    """
    out: list[Any] = []
    for i in range(0, len(answers), group):
        block = answers[i:i + group]
        out += [majority_vote(block, task.same_answer)] * len(block)
    return out


def majority_vote(
    answers: Sequence[Any],
    same_answer: Callable[[Any, Any], bool] | None = None,
) -> Any | None:
    """The most frequent non-``None`` answer; ``None`` when every answer is ``None`` (or none given).

    Answers are grouped by ``same_answer`` (default ``==``; pass ``task.same_answer``), each group
    represented by its first member. Ties go to the group whose first member comes earliest in
    ``answers``, so the result is deterministic in the order of the candidates.
    """
    same = same_answer or (lambda a, b: a == b)
    groups: list[list] = []  # [representative, count], in order of first occurrence
    for answer in answers:
        if answer is None:
            continue
        for group in groups:
            if same(group[0], answer):
                group[1] += 1
                break
        else:
            groups.append([answer, 1])
    best = None
    for representative, count in groups:  # strict '>' keeps the earliest group on ties
        if best is None or count > best[1]:
            best = (representative, count)
    return None if best is None else best[0]
