"""Rewards as plain callables with the TRL signature ``f(completions, **columns) -> list[float | None]``
(this module never imports TRL: any trainer that calls reward functions this way can use them).

So MRO's rewards plug into other trainers (e.g. TRL's ``GRPOTrainer(reward_funcs=[...])``).
TRL passes every dataset column as a keyword list (one entry per completion) plus extras such as
``prompts``; unknown keywords are ignored. Completions are strings, or chat-style lists of
``{"role", "content"}`` messages (the last assistant message is scored).

Dataset columns each task needs to rebuild its example:

- ``sudoku``: ``puzzle`` and ``solution`` (16-digit strings, ``0`` = blank);
- ``countdown``: ``nums`` (list of ints) and ``target`` (int).
"""

from __future__ import annotations

from typing import Any, Callable

from mro.errors import MroError
from mro.rewards.terms import check_weight
from mro.rewards.quality import quality_reward
from mro.tasks.base import Example, get_task

#: the dataset columns each task's example is rebuilt from.
TASK_COLUMNS: dict[str, tuple[str, ...]] = {
    "sudoku": ("puzzle", "solution"),
    "countdown": ("nums", "target"),
}
_WEIGHTS = ("correct_weight", "format_weight")

RewardFn = Callable[..., list]


def _example(task_name: str, row: dict[str, Any]) -> Example:
    """The example of one dataset row (``Example.data`` is what the task's verifier reads)."""
    answer = row["solution"] if task_name == "sudoku" else row["target"]
    if task_name == "countdown":
        row = {"nums": [int(v) for v in row["nums"]], "target": int(row["target"])}
    return Example(id="", question="", answer=answer, data=dict(row))


def completion_text(completion: Any) -> str | None:
    """The text of a completion: a string, or the last assistant message of a chat list."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)) and completion:
        messages = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in messages if m.get("role", "assistant") == "assistant"]
        content = (assistant or messages or [{}])[-1].get("content")
        return content if isinstance(content, str) else None
    return None


def quality_reward_fn(task_name: str, **weights: float) -> RewardFn:
    """A TRL reward function computing ``R_q`` (docs/method.md section 3) against each row's reference.

    ``weights``: ``correct_weight`` and ``format_weight`` (default 1). A completion that cannot be
    scored (not text, or a row the verifier rejects) gets ``None``; a missing column is a one-line
    ``MroError`` naming it.

    >>> fn = quality_reward_fn("sudoku", format_weight=0.5)
    >>> grid = "1234341221434321"
    >>> fn([grid, [{"role": "assistant", "content": "no idea"}]],
    ...    puzzle=["0234341221434320"] * 2, solution=[grid] * 2)
    [1.5, 0.0]
    """
    task = get_task(task_name)
    if task_name not in TASK_COLUMNS:
        raise MroError(f"no dataset columns known for task {task_name!r}; known: {', '.join(TASK_COLUMNS)}")
    unknown = sorted(set(weights) - set(_WEIGHTS))
    if unknown:
        raise MroError(f"unknown quality weight(s) {', '.join(unknown)}; known: {', '.join(_WEIGHTS)}")
    checked = {name: check_weight(name, value) for name, value in weights.items()}
    needed = TASK_COLUMNS[task_name]

    def reward(completions: list, **columns) -> list[float | None]:
        for name in needed:
            if name not in columns:
                raise MroError(f"{task_name} reward needs dataset column {name!r}, which is missing")
            if len(columns[name]) != len(completions):
                rows = len(columns[name])
                raise MroError(f"column {name!r} has {rows} rows for {len(completions)} completions")
        out: list[float | None] = []
        for i, completion in enumerate(completions):
            text = completion_text(completion)
            try:
                if text is None:
                    raise MroError("completion is not text")
                example = _example(task_name, {name: columns[name][i] for name in needed})
                out.append(quality_reward(task, example, text, **checked))
            except (MroError, KeyError, TypeError, ValueError, IndexError):
                out.append(None)
        return out

    reward.__name__ = f"quality_{task_name}"
    return reward


def perplexity_reward_fn(scorer, upper: float = 100.0, scale: float = 100.0) -> RewardFn:
    """A TRL reward function computing ``R_ppl`` (docs/method.md section 3) of each completion's text.

    ``scorer``: a :class:`mro.models.ar.PerplexityScorer` or a name for ``load_scorer``
    (``"smollm2"``, a built-in tiny causal LM, a causal LM hub id or folder).
    """
    from mro.models.ar import load_scorer
    from mro.rewards.perplexity import ppl_to_reward

    scorer = load_scorer(scorer) if isinstance(scorer, str) else scorer

    def reward(completions, **_columns) -> list[float | None]:
        texts = [completion_text(c) for c in completions]
        scored = [t for t in texts if t is not None]
        ppl = iter(scorer.perplexity(scored)) if scored else iter(())
        return [None if t is None else ppl_to_reward(next(ppl), upper, scale) for t in texts]

    reward.__name__ = "perplexity"
    return reward


def token_verification_reward_fn(model, tokens: int | str = "all", seed: int = 0) -> RewardFn:
    """A TRL reward function computing ``R_tv`` (docs/method.md section 3) of each finished completion.

    Every completion token counts as committed in one step: ``tokens`` of them (or all) are masked
    again one at a time and the DLM's mean log-probability of the original token is the reward,
    given the ``prompts`` column (empty prompt when absent). ``model`` is a ``DiffusionLM`` or a
    name for ``load_model``. A completion with no tokens gets ``None``.
    """
    import torch

    from mro.models.load import load_model
    from mro.rewards.verification import token_verification
    from mro.sampling.sampler import start

    model = load_model(model) if isinstance(model, str) else model
    gen = torch.Generator(device=model.device).manual_seed(seed)

    def reward(completions, prompts=None, **_columns) -> list[float | None]:
        out: list[float | None] = []
        for i, completion in enumerate(completions):
            text = completion_text(completion)
            prompt = completion_text(prompts[i]) if prompts is not None else ""
            ids = _encode_plain(model.tokenizer, text) if text else []
            if not ids:
                out.append(None)
                continue
            traj = start(model, [model.encode_prompt(prompt) if prompt else []], [ids])
            traj.commit_step.zero_()  # the whole completion, committed at "step 0"
            traj.steps_done = 1
            out.append(float(token_verification(model, traj, [(0, 1)], tokens, generator=gen)[0, 0]))
        return out

    reward.__name__ = "token_verification"
    return reward


def _encode_plain(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without the special tokens an HF tokenizer would add around it."""
    try:
        return list(tokenizer.encode(text, add_special_tokens=False))
    except TypeError:  # the built-in character tokenizer adds none
        return list(tokenizer.encode(text))
