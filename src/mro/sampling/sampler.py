"""The denoising loop with the trajectory exposed (docs/method.md section 2; LLaDA ``generate.py`` semantics).

``start`` lays out a batch (left-padded prompts, response masks or pre-filled tokens), ``denoise``
runs steps from any intermediate state, ``generate`` does both. Each step:

1. logits = model(x) (with classifier-free guidance: a second row with every position that was
   not a mask at the start, the prompt's left padding included, replaced by the mask token, and
   ``un + (scale + 1) * (cond - un)``, as LLaDA's reference does);
2. inside the current block only, ``x0 = argmax(exp(logits) / (-log u) ** temperature)`` with
   ``u ~ U(0, 1)`` and the arithmetic in float64, the reference's own Gumbel-max (temperature 0:
   argmax of the logits);
3. confidence = ``softmax(logits)`` at ``x0``, computed as the reference computes it (a softmax
   in the logits' dtype, so confidences near 1 stay apart), for ``low_confidence``, or uniform
   (``random``); positions already committed get -inf;
4. commit the top ``ceil(masks left in block / steps left in block)`` positions per row (LLaDA's
   even split), or with ``threshold``: every position with confidence >= threshold, at least
   ``min_tokens`` (default one)
   (Fast-dLLM's parallel decoding; then ``steps`` is not used and blocks end when they are full).

The mask token itself is never sampled; ``suppress_eos`` bans EOS too. ``denoise(greedy_rows=...)``
decodes chosen rows at temperature 0 while the others sample (test-time scaling keeps one greedy
candidate this way); every row still draws its noise, so the other rows' draws do not change.

Work beyond the forward pass touches only the current block's positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch

from mro.config import Config
from mro.errors import MroError
from mro.models.base import DiffusionLM
from mro.sampling.batch import layout
from mro.sampling.cache import check_cache_mode, check_cache_refresh, check_model_caches, replicated_block_logits
from mro.sampling.schedule import check_schedule, tokens_this_step
from mro.sampling.trajectory import PENDING, PREFILLED, Trajectory

REMASKING = ("low_confidence", "random")


@dataclass
class DecodeConfig(Config):
    """How to denoise (docs/method.md section 2)."""

    gen_length: int = field(default=16, metadata={"help": "response length in tokens"})
    steps: int = field(default=16, metadata={"help": "denoising steps over the whole response"})
    block_length: int | None = field(default=None, metadata={
        "help": "semi-autoregressive block length (default: gen_length, one block)"})
    temperature: float = field(default=0.0, metadata={"help": "Gumbel-max temperature; 0 = argmax", "min": 0})
    remasking: str = field(default="low_confidence", metadata={"help": "low_confidence | random",
                                                               "choices": REMASKING})
    cfg_scale: float = field(default=0.0, metadata={"help": "classifier-free guidance scale (0 = off)", "min": 0})
    suppress_eos: bool = field(default=False, metadata={"help": "never sample the EOS token"})
    threshold: float | None = field(default=None, metadata={
        "help": "confidence-threshold parallel decoding (Fast-dLLM); None = fixed schedule", "gt": 0, "max": 1})
    min_tokens: int = field(default=1, metadata={
        "help": "with threshold: commit at least this many positions per step (the most confident; "
                "1 = Fast-dLLM's rule), so a block takes at most ceil(its masks / min_tokens) steps", "min": 1})
    cache: str = field(default="none", metadata={
        "help": "KV cache (Fast-dLLM): none | prefix (recompute the block and what follows) | dual (the block only)"})
    cache_refresh: int = field(default=0, metadata={
        "help": "with a cache: also refill it with a full forward every this many steps inside a block "
                "(0 = only at block boundaries, Fast-dLLM's rule; 1 = every step, equal to none)", "min": 0})

    def __post_init__(self):
        super().__post_init__()  # finite numbers (nan or inf would decode silently wrong), bounds, choices
        if self.block_length is None:
            self.block_length = self.gen_length
        check_schedule(self.gen_length, self.steps, self.block_length)
        check_cache_mode(self.cache)
        check_cache_refresh(self.cache_refresh)

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
                      conditioned=(tokens != model.mask_token_id),
                      commit_step=commit_step, logprob=nan, confidence=nan.clone(),
                      steps_done=0, mask_token_id=model.mask_token_id)


def _forward_rows(model: DiffusionLM, traj: Trajectory, cfg: DecodeConfig, replicas: int = 1):
    """``(x, attn)``: the rows one forward runs, one per run of ``replicas`` identical copies, followed
    under classifier-free guidance by their unconditional rows."""
    x, attn = traj.tokens, traj.attention_mask
    if replicas > 1:  # rows come in runs of identical copies: one forward per run, shared
        x, attn = x[::replicas], attn[::replicas]
    if cfg.cfg_scale > 0:
        # the reference's unconditional row: every position that was not a mask at the start
        # (prompt, its left padding, pre-filled response tokens) becomes the mask token
        cond_rows = traj.conditioned[::replicas] if replicas > 1 else traj.conditioned
        x, attn = torch.cat([x, x.masked_fill(cond_rows, model.mask_token_id)]), torch.cat([attn, attn])
    return x, attn


def _guided(logits: torch.Tensor, cfg: DecodeConfig, replicas: int) -> torch.Tensor:
    """The forward rows' logits -> one per trajectory row (``un + (scale + 1) * (cond - un)`` under guidance)."""
    if cfg.cfg_scale > 0:
        cond, unc = logits.chunk(2)
        logits = unc + (cfg.cfg_scale + 1) * (cond - unc)
    return logits.repeat_interleave(replicas, 0) if replicas > 1 else logits


def _model_logits(model: DiffusionLM, traj: Trajectory, cfg: DecodeConfig, replicas: int = 1) -> torch.Tensor:
    """``[B, L, V]`` logits of one full forward (no cache)."""
    return _guided(model.logits(*_forward_rows(model, traj, cfg, replicas)), cfg, replicas)


def _block_logits(model: DiffusionLM, traj: Trajectory, cfg: DecodeConfig, lo: int, hi: int,
                  replicas: int = 1) -> torch.Tensor:
    """``[B, hi - lo, V]`` logits of the current block; with a cache, ``traj.cache`` is refilled at
    the block's first step and read at the others (mro.sampling.cache); with ``cache_refresh r``
    also refilled once ``r`` steps have run since the last fill."""
    if cfg.cache == "none":
        return _model_logits(model, traj, cfg, replicas)[:, lo:hi]
    x, attn = _forward_rows(model, traj, cfg, replicas)
    cache = traj.cache
    if cache is not None and cfg.cache_refresh and traj.steps_done - cache.filled_at >= cfg.cache_refresh:
        cache = None  # stale: this step's forward is a full one and refills the cache
    logits, fresh = replicated_block_logits(model, x, attn, cache, cfg.cache, lo, hi, cfg.cfg_scale > 0, replicas)
    traj.cache = fresh if fresh is cache else replace(fresh, filled_at=traj.steps_done)
    return _guided(logits, cfg, replicas)


def _sample_block(logits: torch.Tensor, cfg: DecodeConfig, generator: torch.Generator | None,
                  greedy_rows: torch.Tensor | None = None):
    """``[B, bl, V]`` block logits -> (x0, confidence, log-prob of x0 under the sampler).

    The arithmetic restates LLaDA's reference ``generate``: Gumbel-max as
    ``exp(logits) / (-log u) ** T`` in float64, confidence as ``softmax(logits)`` in the logits'
    own dtype. ``greedy_rows`` (``[B]`` bool): rows that take the argmax whatever the temperature
    (their noise is drawn and unused).
    """
    if cfg.temperature > 0:
        u = torch.rand(logits.shape, dtype=torch.float64, device=logits.device, generator=generator)
        x0 = (logits.double().exp() / (-torch.log(u)) ** cfg.temperature).argmax(-1)
        if greedy_rows is not None:
            x0 = torch.where(greedy_rows[:, None], logits.argmax(-1), x0)
    else:
        x0 = logits.argmax(-1)
    lf = logits.float()
    model_logp = torch.log_softmax(lf, -1).gather(-1, x0[..., None]).squeeze(-1)
    if cfg.temperature > 0:
        logp = torch.log_softmax(lf / cfg.temperature, -1).gather(-1, x0[..., None]).squeeze(-1)
        if greedy_rows is not None:  # a greedy row samples from softmax(logits), as at temperature 0
            logp = torch.where(greedy_rows[:, None], model_logp, logp)
    else:
        logp = model_logp  # at temperature 0 the sampler's distribution is softmax(logits)
    if cfg.remasking == "low_confidence":
        conf = torch.softmax(logits, -1).gather(-1, x0[..., None]).squeeze(-1).float()
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
            replicas: int = 1, greedy_rows: torch.Tensor | None = None) -> Trajectory:
    """Run up to ``num_steps`` more steps (all that are left when None) from ``traj``'s state.

    Returns a new trajectory; ``traj`` is not modified. Running ``a`` steps then ``b`` steps
    equals running ``a + b`` steps (same generator stream at temperature > 0).

    ``replicas``: the input's rows are runs of that many identical copies (``repeat_interleave``,
    as test-time scaling makes them); the first step then runs one forward per run and shares
    its logits (the copies still draw their own noise). Later steps differ and run in full.

    ``greedy_rows``: ``[B]`` bool, rows decoded at temperature 0 whatever ``cfg.temperature``.
    """
    if traj.gen_length != cfg.gen_length:
        raise MroError(f"trajectory has {traj.gen_length} response positions but gen_length is {cfg.gen_length}")
    check_model_caches(model, cfg.cache)
    traj = traj.clone()
    if cfg.cache == "none":
        traj.cache = None
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
        logits = _block_logits(model, traj, cfg, lo, hi, replicas if ran == 0 else 1)
        logits[..., banned] = float("-inf")  # in place: the logits are this step's own, unused elsewhere
        x0, conf, logp = _sample_block(logits, cfg, generator, greedy_rows)
        masked = traj.tokens[:, lo:hi] == model.mask_token_id
        conf = conf.masked_fill(~masked, float("-inf"))
        if cfg.threshold is None:
            steps_left = cfg.steps_per_block - traj.steps_done % cfg.steps_per_block
            n = tokens_this_step(masked.sum(-1), steps_left)
        else:
            n = torch.maximum((conf >= cfg.threshold).sum(-1), masked.sum(-1).clamp(max=cfg.min_tokens))
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
    traj = denoise(model, traj, cfg, hooks=hooks, generator=generator)
    traj.cache = None  # decoding is over: the last block's keys and values are not kept
    return traj
