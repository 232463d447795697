"""Problems as a model sees them: one encoding of examples into prompts for evaluation and training
(docs/method.md section 8, "Prompts").

``encode(task, model, examples, protocol, gen_length)`` returns an :class:`Encoded` batch: prompt
ids, pre-filled responses (the built-in tiny layout, masks where to generate) or ``None`` (text
protocols: the response is ``gen_length`` masks), the response length, and how many positions of
each example are generated. ``mro eval``, ``mro show``, ``mro analyze correlation`` and the
trainers' collection, rollouts and validation all encode through it, so a problem reads the same
everywhere. :func:`check_steps` is their one refusal of a step count above the response length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from mro.errors import MroError
from mro.models.base import DiffusionLM
from mro.models.tokenizer import CharTokenizer
from mro.tasks.base import Example, Task, tiny_batch


@dataclass
class Encoded:
    """A batch of problems laid out for one model."""

    prompts: list[list[int]]
    #: pre-filled responses (mask id where to generate), or None: ``gen_length`` masks each
    responses: list[list[int]] | None
    gen_length: int
    #: generated positions (masks at the start) of each example
    masks: list[int]

    @property
    def most_masks(self) -> int:
        """The most masked positions of any example (what a step schedule must cover)."""
        return max(self.masks, default=self.gen_length)

    def rows(self, idx: Sequence[int]) -> tuple[list[list[int]], list[list[int]] | None]:
        """Prompts and responses of the examples ``idx``."""
        return [self.prompts[i] for i in idx], [self.responses[i] for i in idx] if self.responses else None


def check_steps(steps: Iterable[int], gen_length: int, name: str = "steps") -> None:
    """Refuse any step count above the ``gen_length`` response positions (a one-line ``MroError``
    naming the setting): LLaDA's schedule allows it, but every extra step is a forward that
    commits nothing. ``mro eval`` and the trainers check their step counts through this."""
    for s in steps:
        if s > gen_length:
            raise MroError(f"{name} {s} exceed the {gen_length} response positions; use at most {gen_length} "
                           "steps (one token per step)")


def encode(task: Task, model: DiffusionLM, examples: Sequence[Example], protocol: str,
           gen_length: int | None = None) -> Encoded:
    """Lay out ``examples`` for ``model`` under ``protocol`` (``tiny``: the built-in character
    layout of the task; ``d1`` / ``mro``: a text prompt of :mod:`mro.tasks.protocols`, which needs
    ``gen_length``). A tiny model trained on another task, or a ``gen_length`` the tiny layout does
    not have, is a one-line ``MroError``."""
    examples = list(examples)
    if protocol == "tiny":
        if not isinstance(model.tokenizer, CharTokenizer):
            raise MroError("protocol 'tiny' is for the built-in tiny models; use --protocol d1 or mro")
        trained = getattr(model, "task", None)
        if trained and trained != task.name:
            from mro.models.load import builtin_models

            shipped = f" (shipped: --model {task.name}-tiny)" if f"{task.name}-tiny" in builtin_models() else ""
            raise MroError(f"model {model.name} was trained on {trained}, not {task.name}: its layout and "
                           f"vocabulary do not fit; pick a {task.name} model{shipped} or --task {trained}")
        if not task.tiny_gen_length:
            raise MroError(f"task {task.name} has no layout for the built-in tiny models; "
                           "use --protocol d1 or mro with a real model")
        if gen_length not in (None, task.tiny_gen_length):
            raise MroError(f"task {task.name} lays out {task.tiny_gen_length} response tokens for tiny models, "
                           f"not gen_length {gen_length}")
        prompts, responses = tiny_batch(task, examples, model.tokenizer)
        masks = [sum(t == model.mask_token_id for t in r) for r in responses]
        return Encoded(prompts, responses, task.tiny_gen_length, masks)
    from mro.tasks.protocols import get_protocol, prompt_ids

    get_protocol(protocol)  # one-line error for an unknown protocol
    if gen_length is None:
        raise MroError(f"protocol {protocol!r} needs --gen-length (the response length in tokens)")
    return Encoded([prompt_ids(model, task, ex, protocol) for ex in examples], None, gen_length,
                   [gen_length] * len(examples))
