"""Reward-guided test-time scaling (docs/method.md section 5): segment search and its baselines.

From the current state, ``k`` continuations of one segment of ``w`` steps are sampled as one
batch, each is scored, the best is kept, and decoding continues from it. ``tts-mro`` scores a
segment with the multi-reward (intra rewards once on the segment, docs/method.md section 4; on the final segment
also ``R_q`` against the majority-vote answer of the ``k`` candidates); ``tts-cbr`` with the
mean confidence of the segment's committed tokens. ``best-of-n`` decodes ``k`` whole responses
and picks by majority vote or by the final multi-reward.

With ``cache prefix|dual`` (mro.sampling.cache) the ``k`` candidates of a segment inherit the
kept row's block cache, a block's first forward runs once for the ``k`` copies, and token
verification of the segment's commits reads the candidates' caches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from mro.errors import MroError
from mro.models.base import DiffusionLM
from mro.rewards.multi import MultiReward, RewardConfig
from mro.rewards.perplexity import state_texts
from mro.rewards.quality import group_vote_targets
from mro.rewards.sgro import group_returns
from mro.sampling import DecodeConfig, Trajectory, denoise, start
from mro.search.decoders import DecodeResult, register_decoder

SELECT = ("vote", "reward")
#: temperature of the search decoders when none is given (docs/method.md section 5)
SEARCH_TEMPERATURE = 0.5
#: most candidates per prompt (``--k``)
MAX_CANDIDATES = 256


@dataclass
class SearchConfig(RewardConfig):
    """Test-time scaling settings (docs/method.md section 5) on top of the reward settings."""

    tv_tokens: str = field(default="all", metadata={
        "help": "tokens verified per segment: a number or 'all' (search default: all; one random token, the "
                "paper's choice, is too noisy when a step commits several tokens: docs/method.md section 5)"})
    k: int = field(default=4, metadata={"help": "candidates per segment (tts-*) or responses (best-of-n); each "
                                                "is a copy of the batch", "min": 1, "max": MAX_CANDIDATES})
    w: int = field(default=1, metadata={"help": "steps per segment (the paper: 32 of 256)", "min": 1})
    select: str = field(default="vote", metadata={"help": "best-of-n choice: vote (majority) | reward",
                                                  "choices": SELECT})
    greedy_candidate: bool | None = field(default=None, metadata={
        "help": "one of the k candidates (the first) continues greedily (temperature 0), so the search "
                "can always keep the greedy path (default: on for tts-mro and best-of-n; off for tts-cbr, "
                "whose confidence score ranks the greedy candidate first at every w = 1 segment, which "
                "would make the search greedy decoding: docs/method.md section 5)"})

    def greedy_for(self, decode: str) -> bool:
        """``greedy_candidate``, or when unset the default of the search ``decode``."""
        return self.greedy_candidate if self.greedy_candidate is not None else decode != "tts-cbr"


SegmentScore = Callable[[Trajectory, tuple[int, int], bool], torch.Tensor]


def check_diversity(cfg: DecodeConfig, k: int) -> None:
    """A search over ``k > 1`` candidates needs temperature > 0: at 0 they are all the same."""
    if k > 1 and cfg.temperature == 0:
        raise MroError(f"test-time scaling with k={k} needs a temperature > 0 (at 0 the k candidates are "
                       f"identical); leave --temperature unset for the search default {SEARCH_TEMPERATURE}, "
                       "or use --k 1 / --decode vanilla")


def segment_search(model: DiffusionLM, prompts, responses, cfg: DecodeConfig, k: int, w: int,
                   score: SegmentScore, generator: torch.Generator | None = None,
                   greedy_candidate: bool = False) -> tuple[Trajectory, list[list]]:
    """Decode by segments of ``w`` steps keeping the best of ``k`` candidates (by ``score``).

    ``score(candidates, (start, end), final)`` returns one value per candidate row (rows
    ``i*k .. i*k+k-1`` continue prompt ``i``). Returns the chosen trajectory and, per prompt,
    the candidates' scores of every segment. ``greedy_candidate``: candidate 0 of every prompt
    continues at temperature 0 (the others sample); ties in ``score`` go to it.
    """
    if cfg.threshold is not None:
        raise MroError("test-time scaling needs a fixed step schedule; drop --threshold")
    check_diversity(cfg, k)
    traj = start(model, prompts, responses, gen_length=cfg.gen_length)
    b = traj.batch_size
    history: list[list] = [[] for _ in range(b)]
    offsets = torch.arange(b, device=traj.tokens.device) * k
    greedy = None
    if greedy_candidate and k > 1:
        greedy = torch.arange(b * k, device=traj.tokens.device) % k == 0
    while traj.steps_done < cfg.steps:
        s = traj.steps_done
        e = min(s + w, cfg.steps)
        cands = denoise(model, traj.repeat_interleave(k), cfg, num_steps=e - s, generator=generator, replicas=k,
                        greedy_rows=greedy)
        scores = score(cands, (s, e), e == cfg.steps).view(b, k)
        best = scores.argmax(-1)
        traj = cands.index(offsets + best)
        for i, row in enumerate(scores.tolist()):
            history[i].append({"segment": [s, e], "scores": [round(v, 5) for v in row], "chosen": int(best[i])})
    traj.cache = None  # decoding is over: the last block's keys and values are not kept
    return traj, history


def _reward(model, task, search: SearchConfig) -> MultiReward:
    if task is None:
        raise MroError("this decode method needs the task (for the quality reward)")
    return MultiReward(model, task, search)


@register_decoder("tts-mro")
def tts_mro(model: DiffusionLM, prompts, responses, cfg: DecodeConfig, generator=None, task=None,
            search: SearchConfig | None = None, reward: MultiReward | None = None, **_) -> DecodeResult:
    """Segment search scored by the multi-reward (docs/method.md section 5)."""
    search = search or SearchConfig()
    reward = reward or _reward(model, task, search)
    f0, s0 = reward.dlm_forwards, reward.scorer_texts

    def score(cands: Trajectory, seg: tuple[int, int], final: bool) -> torch.Tensor:
        intra = reward.intra(cands, [seg], generator=generator)
        q = None
        if final and reward.has_inter:
            texts = reward.texts(cands)
            q = reward.inter(texts, targets=reward.vote_targets(texts, search.k)).to(intra.device)
        return group_returns(intra, None, q, w_q=0.0 if q is None else 1.0)[:, 0]  # inter carries its weights

    traj, history = segment_search(model, prompts, responses, cfg, search.k, search.w, score, generator,
                                    search.greedy_for("tts-mro"))
    return _result(traj, cfg, search.k, search.w, history, (reward.dlm_forwards - f0), (reward.scorer_texts - s0))


@register_decoder("tts-cbr")
def tts_cbr(model: DiffusionLM, prompts, responses, cfg: DecodeConfig, generator=None,
            search: SearchConfig | None = None, **_) -> DecodeResult:
    """Segment search scored by the confidence-based reward: mean confidence of the segment's commits."""
    search = search or SearchConfig()

    def score(cands: Trajectory, seg: tuple[int, int], final: bool) -> torch.Tensor:
        inside = (cands.commit_step >= seg[0]) & (cands.commit_step < seg[1])
        conf = torch.where(inside, cands.confidence, torch.zeros_like(cands.confidence))
        return conf.sum(-1) / inside.sum(-1).clamp_min(1)

    traj, history = segment_search(model, prompts, responses, cfg, search.k, search.w, score, generator,
                                    search.greedy_for("tts-cbr"))
    return _result(traj, cfg, search.k, search.w, history, 0, 0)


@register_decoder("best-of-n")
def best_of_n(model: DiffusionLM, prompts, responses, cfg: DecodeConfig, generator=None, task=None,
              search: SearchConfig | None = None, reward: MultiReward | None = None, **_) -> DecodeResult:
    """``k`` whole responses; keep the majority answer (``select=vote``) or the best final multi-reward."""
    search = search or SearchConfig()
    k = search.k
    if search.select == "vote" and task is None:
        raise MroError("best-of-n with select=vote needs the task (to extract answers)")
    f0 = s0 = 0
    if search.select == "reward":
        reward = reward or _reward(model, task, search)
        f0, s0 = reward.dlm_forwards, reward.scorer_texts

    def score(cands: Trajectory, seg: tuple[int, int], final: bool) -> torch.Tensor:
        texts = state_texts(model, cands, cands.steps_done)
        if search.select == "vote":
            answers = [task.extract(t) for t in texts]
            targets = group_vote_targets(task, answers, k)
            out = [float(a is not None and t is not None and task.same_answer(a, t)) for a, t in zip(answers, targets)]
            return torch.tensor(out, device=cands.tokens.device)
        intra = reward.intra(cands, [(0, cfg.steps)], generator=generator)
        q = reward.inter(texts, targets=reward.vote_targets(texts, k)).to(intra.device) if reward.has_inter else None
        return group_returns(intra, None, q, w_q=0.0 if q is None else 1.0)[:, 0]  # inter carries its weights

    traj, history = segment_search(model, prompts, responses, cfg, k, cfg.steps, score, generator,
                                    search.greedy_for("best-of-n"))
    extra_f = (reward.dlm_forwards - f0) if search.select == "reward" else 0
    extra_s = (reward.scorer_texts - s0) if search.select == "reward" else 0
    return _result(traj, cfg, k, cfg.steps, history, extra_f, extra_s)


def _result(traj: Trajectory, cfg: DecodeConfig, k: int, w: int, history: Sequence[list],
            extra_forwards: int, scorer_texts: int) -> DecodeResult:
    b = traj.batch_size
    per_forward = 2 if cfg.cfg_scale > 0 else 1
    segments = -(-cfg.steps // w)
    # the first step of a segment runs once for its k identical copies (see denoise's replicas)
    nfe = (k * cfg.steps - (k - 1) * segments) * per_forward + extra_forwards / b
    return DecodeResult(trajectory=traj, nfe=[float(nfe)] * b, scorer_calls=[scorer_texts / b] * b,
                        details=[{"search": h} for h in history])
