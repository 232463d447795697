"""The multi-reward of a trajectory (docs/method.md section 3): the registered reward terms
(:mod:`mro.rewards.terms`) summed by weight, intra (``R_tv``, ``R_ppl``) per step group and inter
(``R_q``) on final responses, with on/off switches and cost counters.

Test-time scaling (``mro.search``), the trainers and the correlation analysis all score through
this one object, so they agree on what a reward is.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from mro.config import Config
from mro.errors import MroError
from mro.models.ar import PerplexityScorer, load_scorer
from mro.models.base import DiffusionLM
from mro.models.load import builtin_models
from mro.rewards.perplexity import state_texts
from mro.rewards.quality import group_vote_targets
from mro.rewards.sgro import group_intra
from mro.rewards.terms import parse_rewards
from mro.rewards.verification import per_step_bounds
from mro.sampling.trajectory import Trajectory
from mro.tasks.base import Example, Task


@dataclass
class RewardConfig(Config):
    """Which rewards, with which weights and settings (docs/method.md section 3)."""

    rewards: str = field(default="tv,ppl,q", metadata={
        "help": "reward terms and weights, e.g. 'tv,ppl,q' or 'tv=1,q=0.5' (unlisted = off)"})
    tv_tokens: str = field(default="1", metadata={"help": "tokens verified per step group: a number or 'all'"})
    ppl_scorer: str | None = field(default=None, metadata={
        "help": "PPL scorer: built-in tiny causal LM, 'smollm2', or a causal LM hub id/path "
                "(default: '<task>-ar-tiny' for tiny models, 'gpt2' otherwise)"})
    ppl_upper: float = field(default=100.0, metadata={"help": "C: PPL upper bound of R_ppl", "gt": 0})
    ppl_scale: float = field(default=100.0, metadata={"help": "F: scale of R_ppl", "gt": 0})
    group_reward: str = field(default="end", metadata={
        "help": "intra reward of a step group: end (once, at its end) | sum (sum of per-step rewards)",
        "choices": ("end", "sum")})
    correct_weight: float = field(default=1.0, metadata={"help": "weight of correctness inside R_q"})
    format_weight: float = field(default=1.0, metadata={"help": "weight of the format term inside R_q"})

    def __post_init__(self):
        super().__post_init__()
        parse_rewards(self.rewards)
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
        if scorer is None and any(t.needs_scorer for t, _ in self.weights.on()):
            self.scorer = load_scorer(default_scorer(model, task, cfg.ppl_scorer), device=str(model.device))
        self.dlm_forwards = 0
        self.scorer_texts = 0
        #: the DLM that reads ``R_tv`` (the scored model itself unless :meth:`verified_by` says otherwise)
        self.verifier = model
        self.verifier_shares_cache = True

    def intra(self, traj: Trajectory, bounds: Sequence[tuple[int, int]],
              generator: torch.Generator | None = None) -> torch.Tensor:
        """``[B, n_groups]`` the weighted sum of the intra terms (``w_tv * R_tv + w_ppl * R_ppl``) of
        each step group (docs/method.md section 4's ``group_reward``)."""
        total = torch.zeros(traj.batch_size, len(bounds), device=traj.tokens.device)
        for name, values in self.intra_terms(traj, bounds, generator).items():
            total += self.weights[name] * values
        return total

    def intra_terms(self, traj: Trajectory, bounds: Sequence[tuple[int, int]],
                    generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Each intra term that is on, unweighted: ``{name: [B, n_groups]}`` (the trainers log and
        scale them one by one; :meth:`intra` is their weighted sum)."""
        steps = per_step_bounds(bounds[-1][1])[bounds[0][0]:] if self.cfg.group_reward == "sum" else bounds
        out = {}
        for term, _ in self.weights.on("intra"):
            values = term.score(self, traj, steps, generator).to(traj.tokens.device).float()
            if self.cfg.group_reward == "sum":
                shifted = [(s - bounds[0][0], e - bounds[0][0]) for s, e in bounds]
                values = group_intra(values, shifted, mode="sum")
            out[term.name] = values
        return out

    @contextlib.contextmanager
    def verified_by(self, model: DiffusionLM | None):
        """``R_tv`` read by ``model`` inside the block (e.g. the frozen starting model of RL,
        docs/method.md section 7's ``verifier: reference``); ``None`` keeps the scored model."""
        before = self.verifier, self.verifier_shares_cache
        if model is not None:  # another model's keys and values: a cached rollout's cache is not its own
            self.verifier, self.verifier_shares_cache = model, False
        try:
            yield self
        finally:
            self.verifier, self.verifier_shares_cache = before

    def texts(self, traj: Trajectory) -> list[str]:
        """Response texts of the trajectory's current state (mask tokens dropped)."""
        return state_texts(self.model, traj, traj.steps_done)

    def inter(self, texts: Sequence[str], targets: Sequence[Any] | None = None,
              examples: Sequence[Example] | None = None) -> torch.Tensor:
        """``[B]`` the weighted sum of the inter terms (``w_q * R_q``) of final responses: against
        ``targets`` (test time, e.g. :meth:`vote_targets`) or the examples' references (training).
        Zeros when every inter term is off. Add it to the last group's return with
        ``group_returns(intra, phi, inter, w_q=1)``."""
        total = torch.zeros(len(texts))
        for term, weight in self.weights.on("inter"):
            total += weight * term.score(self, texts, targets, examples)
        return total

    @property
    def has_inter(self) -> bool:
        """Whether any inter term is on (else :meth:`inter` is all zeros and need not run)."""
        return bool(self.weights.on("inter"))

    def quality(self, texts: Sequence[str], targets: Sequence[Any] | None = None,
                examples: Sequence[Example] | None = None) -> torch.Tensor:
        """``[B]`` ``R_q`` alone, unweighted (for ``group_returns(..., w_q=weights.w_q)``); zeros
        when ``q`` is off. :meth:`inter` is the weighted sum of every inter term."""
        if not self.weights.w_q:
            return torch.zeros(len(texts))
        return self.term("q", texts, targets, examples)

    def term(self, name: str, *args) -> torch.Tensor:
        """One registered term's unweighted values, whatever its weight (analyses that report a
        term on its own: the correlation analysis's inter score is ``R_q``)."""
        from mro.rewards.terms import reward_terms

        found = [t for t in reward_terms() if t.name == name]
        if not found:
            raise MroError(f"unknown reward {name!r}")
        return found[0].score(self, *args)

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
