"""The denoising loop with the trajectory exposed (spec section 2; LLaDA ``generate.py`` semantics).

``start`` lays out a batch (left-padded prompts, response masks or pre-filled tokens), ``denoise``
runs steps from any intermediate state, ``generate`` does both. Each step:

1. logits = model(x) (with classifier-free guidance: the conditioning masked in a second row);
2. inside the current block only, ``x0 = argmax(logits / temperature + Gumbel)`` with the noise
   in float64 (temperature 0: argmax);
3. confidence = softmax probability of ``x0`` (``low_confidence``) or uniform (``random``);
   positions already committed get -inf;
4. commit the top ``ceil(masks left in block / steps left in block)`` positions per row (LLaDA's
   even split), or with ``threshold``: every position with confidence >= threshold, at least one
   (Fast-dLLM's parallel decoding; then ``steps`` is not used and blocks end when they are full).

The mask token itself is never sampled; ``suppress_eos`` bans EOS too.

Work beyond the forward pass touches only the current block's positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from mro.errors import MroError
from mro.models.base import DiffusionLM
from mro.sampling.batch import layout
from mro.sampling.schedule import check_schedule, tokens_this_step
from mro.sampling.trajectory import PENDING, PREFILLED, Trajectory

REMASKING = ("low_confidence", "random")


@dataclass
class DecodeConfig:
    """How to denoise (spec section 2)."""

    gen_length: int = field(default=16, metadata={"help": "response length in tokens"})
    steps: int = field(default=16, metadata={"help": "denoising steps over the whole response"})
    block_length: int | None = field(default=None, metadata={
        "help": "semi-autoregressive block length (default: gen_length, one block)"})
    temperature: float = field(default=0.0, metadata={"help": "Gumbel-max temperature; 0 = argmax"})
    remasking: str = field(default="low_confidence", metadata={"help": "low_confidence | random"})
    cfg_scale: float = field(default=0.0, metadata={"help": "classifier-free guidance scale (0 = off)"})
    suppress_eos: bool = field(default=False, metadata={"help": "never sample the EOS token"})
    threshold: float | None = field(default=None, metadata={
        "help": "confidence-threshold parallel decoding (Fast-dLLM); None = fixed schedule"})

    def __post_init__(self):
        if self.block_length is None:
            self.block_length = self.gen_length
        check_schedule(self.gen_length, self.steps, self.block_length)
        for name in ("temperature", "cfg_scale", "threshold"):  # nan or inf would decode silently wrong
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise MroError(f"{name} must be a finite number, got {value}")
        if self.temperature < 0:
            raise MroError(f"temperature must be >= 0, got {self.temperature}")
        if self.remasking not in REMASKING:
            raise MroError(f"unknown remasking {self.remasking!r}; choose from {', '.join(REMASKING)}")
        if self.cfg_scale < 0:
            raise MroError(f"cfg_scale must be >= 0, got {self.cfg_scale}")
        if self.threshold is not None and not 0 < self.threshold <= 1:
            raise MroError(f"threshold must be in (0, 1], got {self.threshold}")

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        return self.steps // self.num_blocks


@dataclass
class StepInfo:
    """What a per-step hook sees, after the step's commits.

    ``state`` is the sequence after this step (``trajectory.state(step + 1)``), ``committed`` the
    ``[B, G]`` positions committed at this step, ``logits`` the current block's logits.
    """

    step: int
    block: int
    state: torch.Tensor
    committed: torch.Tensor
    logits: torch.Tensor
    trajectory: Trajectory


Hook = Callable[[StepInfo], None]


def start(model: DiffusionLM, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]] | None = None,
          gen_length: int | None = None) -> Trajectory:
    """Lay out a batch at step 0.

    ``prompts`` are token id lists (left-padded to a common length); ``responses`` are optional
    pre-filled responses of equal length holding the mask id where to generate (infilling);
    without them the response is ``gen_length`` masks.
    """
    if responses is None:
        if gen_length is None:
            raise MroError("start() needs responses or gen_length")
        responses = [[model.mask_token_id] * gen_length for _ in prompts]
    tokens, attn, p = layout(prompts, responses, model.pad_token_id)
    dev = model.device
    tokens, attn = tokens.to(dev), attn.to(dev)
    b, g = tokens.shape[0], tokens.shape[1] - p
    masked = tokens[:, p:] == model.mask_token_id
    commit_step = torch.where(masked, PENDING, PREFILLED).to(torch.long)
    nan = torch.full((b, g), float("nan"), device=dev)
    return Trajectory(tokens=tokens, attention_mask=attn, prompt_length=p,
                      conditioned=(attn.bool() & (tokens != model.mask_token_id)),
                      commit_step=commit_step, logprob=nan, confidence=nan.clone(),
                      steps_done=0, mask_token_id=model.mask_token_id)


def _model_logits(model: DiffusionLM, traj: Trajectory, cfg: DecodeConfig, replicas: int = 1) -> torch.Tensor:
    x, attn = traj.tokens, traj.attention_mask
    if replicas > 1:  # rows come in runs of identical copies: one forward per run, shared
        x, attn = x[::replicas], attn[::replicas]
    if cfg.cfg_scale > 0:
        cond_rows = traj.conditioned[::replicas] if replicas > 1 else traj.conditioned
        uncond = x.masked_fill(cond_rows, model.mask_token_id)
        both = model.logits(torch.cat([x, uncond]), torch.cat([attn, attn]))
        cond, unc = both.chunk(2)
        logits = unc + (cfg.cfg_scale + 1) * (cond - unc)
    else:
        logits = model.logits(x, attn)
    return logits.repeat_interleave(replicas, 0) if replicas > 1 else logits


def _sample_block(logits: torch.Tensor, cfg: DecodeConfig, generator: torch.Generator | None):
    """``[B, bl, V]`` block logits -> (x0, confidence, log-prob of x0 under the sampler)."""
    logits = logits.float()
    if cfg.temperature > 0:
        u = torch.rand(logits.shape, dtype=torch.float64, device=logits.device, generator=generator)
        gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))
        x0 = (logits.double() / cfg.temperature + gumbel).argmax(-1)
    else:
        x0 = logits.argmax(-1)
    picked = logits.gather(-1, x0[..., None]).squeeze(-1)
    model_logp = picked - torch.logsumexp(logits, -1)
    if cfg.temperature > 0:
        scaled = logits / cfg.temperature
        logp = picked / cfg.temperature - torch.logsumexp(scaled, -1)
    else:
        logp = model_logp  # at temperature 0 the sampler's distribution is softmax(logits)
    if cfg.remasking == "low_confidence":
        conf = model_logp.exp()
    else:
        conf = torch.rand(x0.shape, device=logits.device, generator=generator)
    return x0, conf, logp


def _current_block(traj: Trajectory, cfg: DecodeConfig) -> int | None:
    """The block the next step decodes, or None when decoding is finished."""
    if cfg.threshold is None:
        if traj.steps_done >= cfg.steps:
            return None
        return traj.steps_done // cfg.steps_per_block
    pending = (traj.commit_step == PENDING).view(traj.batch_size, cfg.num_blocks, cfg.block_length)
    open_blocks = pending.any(-1).any(0).nonzero()
    return int(open_blocks[0]) if len(open_blocks) else None


@torch.no_grad()
def denoise(model: DiffusionLM, traj: Trajectory, cfg: DecodeConfig, num_steps: int | None = None,
            hooks: Sequence[Hook] = (), generator: torch.Generator | None = None,
            replicas: int = 1) -> Trajectory:
    """Run up to ``num_steps`` more steps (all that are left when None) from ``traj``'s state.

    Returns a new trajectory; ``traj`` is not modified. Running ``a`` steps then ``b`` steps
    equals running ``a + b`` steps (same generator stream at temperature > 0).

    ``replicas``: the input's rows are runs of that many identical copies (``repeat_interleave``,
    as test-time scaling makes them); the first step then runs one forward per run and shares
    its logits (the copies still draw their own noise). Later steps differ and run in full.
    """
    if traj.gen_length != cfg.gen_length:
        raise MroError(f"trajectory has {traj.gen_length} response positions but gen_length is {cfg.gen_length}")
    traj = traj.clone()
    p, bl = traj.prompt_length, cfg.block_length
    ranks = torch.arange(bl, device=traj.tokens.device)
    # the mask token is never a prediction (committing it would leave the position masked)
    banned = [model.mask_token_id]
    if cfg.suppress_eos and model.eos_token_id is not None:
        banned.append(model.eos_token_id)
    ran = 0
    while num_steps is None or ran < num_steps:
        block = _current_block(traj, cfg)
        if block is None:
            break
        lo, hi = p + block * bl, p + (block + 1) * bl
        logits = _model_logits(model, traj, cfg, replicas if ran == 0 else 1)[:, lo:hi]
        logits[..., banned] = float("-inf")  # in place: the full logits are this step's own, unused elsewhere
        x0, conf, logp = _sample_block(logits, cfg, generator)
        masked = traj.tokens[:, lo:hi] == model.mask_token_id
        conf = conf.masked_fill(~masked, float("-inf"))
        if cfg.threshold is None:
            steps_left = cfg.steps_per_block - traj.steps_done % cfg.steps_per_block
            n = tokens_this_step(masked.sum(-1), steps_left)
        else:
            n = torch.maximum((conf >= cfg.threshold).sum(-1), masked.any(-1).long())
        kmax = int(n.max())
        commit = torch.zeros_like(masked)
        if kmax > 0:
            top = conf.topk(kmax, dim=-1).indices
            commit.scatter_(1, top, ranks[None, :kmax] < n[:, None])
        step = traj.steps_done
        traj.tokens[:, lo:hi] = torch.where(commit, x0, traj.tokens[:, lo:hi])
        g_lo, g_hi = lo - p, hi - p
        traj.commit_step[:, g_lo:g_hi].masked_fill_(commit, step)
        traj.logprob[:, g_lo:g_hi] = torch.where(commit, logp, traj.logprob[:, g_lo:g_hi])
        traj.confidence[:, g_lo:g_hi] = torch.where(commit, conf, traj.confidence[:, g_lo:g_hi])
        traj.steps_done += 1
        ran += 1
        if hooks:
            committed = torch.zeros_like(traj.commit_step, dtype=torch.bool)
            committed[:, g_lo:g_hi] = commit
            info = StepInfo(step=step, block=block, state=traj.tokens, committed=committed,
                            logits=logits, trajectory=traj)
            for hook in hooks:
                hook(info)
    return traj


def generate(model: DiffusionLM, prompts: Sequence[Sequence[int]], cfg: DecodeConfig,
             responses: Sequence[Sequence[int]] | None = None, hooks: Sequence[Hook] = (),
             generator: torch.Generator | None = None) -> Trajectory:
    """Decode a batch from scratch: :func:`start` then :func:`denoise` to the end."""
    traj = start(model, prompts, responses, gen_length=cfg.gen_length)
    return denoise(model, traj, cfg, hooks=hooks, generator=generator)
