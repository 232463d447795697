"""The multi-reward of a trajectory (docs/method.md section 3): intra (``R_tv``, ``R_ppl``) per step group and
inter (``R_q``) on final responses, with weights, on/off switches and cost counters.

Test-time scaling (``mro.search``), the trainers and the correlation analysis all score through
this one object, so they agree on what a reward is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from mro.errors import MroError
from mro.models.ar import PerplexityScorer, load_scorer
from mro.models.base import DiffusionLM
from mro.models.load import builtin_models
from mro.rewards.combine import parse_rewards
from mro.rewards.perplexity import perplexity_rewards, state_texts
from mro.rewards.quality import group_vote_targets, quality_reward
from mro.rewards.sgro import group_intra
from mro.rewards.verification import committed_in_groups, per_step_bounds, token_verification
from mro.sampling.trajectory import Trajectory
from mro.tasks.base import Example, Task


@dataclass
class RewardConfig:
    """Which rewards, with which weights and settings (docs/method.md section 3)."""

    rewards: str = field(default="tv,ppl,q", metadata={
        "help": "reward terms and weights, e.g. 'tv,ppl,q' or 'tv=1,q=0.5' (unlisted = off)"})
    tv_tokens: str = field(default="1", metadata={"help": "tokens verified per step group: a number or 'all'"})
    ppl_scorer: str | None = field(default=None, metadata={
        "help": "PPL scorer: built-in tiny causal LM, 'smollm2', or a causal LM hub id/path "
                "(default: '<task>-ar-tiny' for tiny models, 'gpt2' otherwise)"})
    ppl_upper: float = field(default=100.0, metadata={"help": "C: PPL upper bound of R_ppl"})
    ppl_scale: float = field(default=100.0, metadata={"help": "F: scale of R_ppl"})
    group_reward: str = field(default="end", metadata={
        "help": "intra reward of a step group: end (once, at its end) | sum (sum of per-step rewards)"})
    correct_weight: float = field(default=1.0, metadata={"help": "weight of correctness inside R_q"})
    format_weight: float = field(default=1.0, metadata={"help": "weight of the format term inside R_q"})

    def __post_init__(self):
        from mro.config import check_fields

        check_fields(self)  # finite numbers (nan or inf would score silently wrong)
        if self.ppl_upper <= 0 or self.ppl_scale <= 0:
            raise MroError(f"ppl_upper and ppl_scale must be > 0, got {self.ppl_upper} and {self.ppl_scale}")
        parse_rewards(self.rewards)
        if self.group_reward not in ("end", "sum"):
            raise MroError(f"group_reward must be 'end' or 'sum', got {self.group_reward!r}")
        if self.tv_tokens != "all" and not (self.tv_tokens.isdigit() and int(self.tv_tokens) >= 1):
            raise MroError(f"tv_tokens must be a whole number >= 1 or 'all', got {self.tv_tokens!r}")


class MultiReward:
    """Scores trajectories of one model on one task. Counts its own forward passes.

    Attributes:
        dlm_forwards: leave-one-out rows sent through the DLM (each is one full forward row).
        scorer_texts: texts scored by the PPL scorer.
    """

    def __init__(self, model: DiffusionLM, task: Task, cfg: RewardConfig, scorer: PerplexityScorer | None = None):
        self.model, self.task, self.cfg = model, task, cfg
        self.weights = parse_rewards(cfg.rewards)
        self.tv_tokens: int | str = "all" if cfg.tv_tokens == "all" else int(cfg.tv_tokens)
        self.scorer = scorer
        if self.weights.w_ppl and scorer is None:
            self.scorer = load_scorer(default_scorer(model, task, cfg.ppl_scorer), device=str(model.device))
        self.dlm_forwards = 0
        self.scorer_texts = 0

    def _tv(self, traj: Trajectory, bounds, generator) -> torch.Tensor:
        tv = token_verification(self.model, traj, bounds, self.tv_tokens, generator=generator)
        committed = committed_in_groups(traj, bounds).sum(-1)
        per = committed if self.tv_tokens == "all" else committed.clamp(max=self.tv_tokens)
        self.dlm_forwards += int(per.sum())
        return tv.nan_to_num(0.0)  # a group that committed nothing (threshold decoding) adds nothing

    def _ppl(self, traj: Trajectory, at: Sequence[int]) -> torch.Tensor:
        self.scorer_texts += traj.batch_size * len(at)
        return perplexity_rewards(self.scorer, self.model, traj, at, self.cfg.ppl_upper, self.cfg.ppl_scale)

    def intra(self, traj: Trajectory, bounds: Sequence[tuple[int, int]],
              generator: torch.Generator | None = None) -> torch.Tensor:
        """``[B, n_groups]`` ``w_tv * R_tv + w_ppl * R_ppl`` of each step group (docs/method.md section 4's ``group_reward``)."""
        steps = per_step_bounds(bounds[-1][1])[bounds[0][0]:] if self.cfg.group_reward == "sum" else bounds
        total = torch.zeros(traj.batch_size, len(steps), device=traj.tokens.device)
        if self.weights.w_tv:
            total += self.weights.w_tv * self._tv(traj, steps, generator)
        if self.weights.w_ppl:
            total += self.weights.w_ppl * self._ppl(traj, [e for _, e in steps])
        if self.cfg.group_reward == "sum":
            shifted = [(s - bounds[0][0], e - bounds[0][0]) for s, e in bounds]
            total = group_intra(total, shifted, mode="sum")
        return total

    def texts(self, traj: Trajectory) -> list[str]:
        """Response texts of the trajectory's current state (mask tokens dropped)."""
        return state_texts(self.model, traj, traj.steps_done)

    def quality(self, texts: Sequence[str], targets: Sequence[Any] | None = None,
                examples: Sequence[Example] | None = None) -> torch.Tensor:
        """``[B]`` ``R_q``, unweighted: against ``targets`` (test time) or the examples' references.

        ``w_q`` is applied in one place, :func:`mro.rewards.sgro.group_returns`, which every
        combination of intra rewards and ``R_q`` goes through (training returns and test-time
        scores alike). Zeros when ``q`` is off.
        """
        if not self.weights.w_q:
            return torch.zeros(len(texts))
        out = []
        for i, text in enumerate(texts):
            if targets is not None and targets[i] is None:  # no candidate had an answer: nothing to agree with
                out.append(quality_reward(self.task, None, text, None, 0.0, self.cfg.format_weight))
                continue
            out.append(quality_reward(self.task, examples[i] if examples else None, text,
                                      targets[i] if targets is not None else None,
                                      self.cfg.correct_weight, self.cfg.format_weight))
        return torch.tensor(out)

    def potentials(self, traj: Trajectory, at: Sequence[int], examples: Sequence[Example]) -> torch.Tensor:
        """``[B, len(at)]`` the SGRO potential ``Phi`` of the states after each step count in ``at``
        (docs/method.md section 4): ``task.potential`` of the state's text, where a task with a
        ``hole`` character (Sudoku's blank ``0``) sees still-masked positions written as it under
        the built-in character tokenizer, and other tasks see the text with masks dropped."""
        from mro.models.tokenizer import CharTokenizer

        hole = getattr(self.task, "hole", None) if isinstance(self.model.tokenizer, CharTokenizer) else None
        out = torch.zeros(traj.batch_size, len(at))
        for j, t in enumerate(at):
            for i, (ex, text) in enumerate(zip(examples, state_texts(self.model, traj, t, hole=hole))):
                out[i, j] = self.task.potential(ex, text)
        return out

    def vote_targets(self, texts: Sequence[str], group: int) -> list[Any]:
        """Majority-vote answer of each consecutive block of ``group`` candidates, repeated per candidate."""
        return group_vote_targets(self.task, [self.task.extract(t) for t in texts], group)


def default_scorer(model: DiffusionLM, task: Task, name: str | None) -> str:
    """The PPL scorer to use when none is named."""
    if name:
        return name
    from mro.models.tokenizer import CharTokenizer

    if isinstance(model.tokenizer, CharTokenizer):
        builtin = f"{task.name}-ar-tiny"
        if builtin not in builtin_models():
            raise MroError(f"no built-in PPL scorer for task {task.name!r}; pass --ppl-scorer or drop 'ppl' from --rewards")
        return builtin
    return "gpt2"
