"""Reinforcement learning with the multi-reward and SGRO (docs/method.md section 7).

``mro train rl``: REINFORCE over the sampler's own trajectories. Each update draws ``prompts``
training problems, rolls each out ``rollouts`` (K) times with the current policy at ``steps``
denoising steps and ``temperature``, scores every trajectory with the multi-reward per SGRO
group (``R_tv``, ``R_ppl`` once per group of ``w`` steps, ``R_q`` at the end, the potential
``Phi`` at group boundaries), subtracts a baseline, draws the groups that enter the update
(all, or ``groups`` of them by importance sampling), and follows

    loss = - sum_g weight_g * sum_{t in g} A_g * log pi(a_t | s_t)

with ``log pi(a_t | s_t)`` the sum over the positions committed at step ``t`` of the sampler's
log-probability of the committed token, recomputed with gradients. Options: a k3 KL penalty to
the starting policy, and PPO-style clipped ratios with several epochs over the same rollouts.

Gradients are accumulated micro-batch by micro-batch of (trajectory, step) pairs, so memory is
set by ``micro_batch``, not by the number of steps. Distributed through accelerate: each process
rolls out its own share of the prompts (``accelerate launch -m mro train rl ...``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from mro.errors import MroError
from mro.rewards.multi import MultiReward, RewardConfig
from mro.rewards.quality import quality_reward
from mro.rewards.sgro import expand_to_steps, group_bounds, group_returns, sample_groups
from mro.sampling import generate
from mro.sampling.trajectory import Trajectory
from mro.tasks import get_task
from mro.train.loss import committed_logprobs
from mro.train import runs
from mro.train.runs import RunConfig
from mro.train.setup import frozen_copy, load_trainable, make_accelerator, optimizer_for, reference_policy

BASELINES = ("none", "group", "batch")
CREDITS = ("group", "to-go")


@dataclass
class RLConfig(RunConfig, RewardConfig):
    """Train a diffusion LM with REINFORCE on the multi-reward, SGRO grouping (docs/method.md section 7)."""

    updates: int = field(default=400, metadata={"help": "policy updates (the run stops at this count or at max_minutes)"})
    max_minutes: float | None = field(default=None, metadata={
        "help": "stop after this many CPU-minutes of this process, summed over resumptions (None = no limit)"})
    prompts: int = field(default=16, metadata={"help": "training problems per update (over all processes)"})
    rollouts: int = field(default=8, metadata={"help": "K: rollouts per problem"})
    steps: list[int] = field(default_factory=lambda: [3], metadata={
        "help": "denoising steps of a rollout; a list (e.g. 2,3,4) cycles over updates"})
    temperature: float = field(default=1.0, metadata={"help": "rollout temperature (> 0: the policy samples)"})
    w: int = field(default=1, metadata={"help": "SGRO: steps per group"})
    groups: int = field(default=0, metadata={
        "help": "SGRO: groups drawn per trajectory for the update (0 = every group, weight 1/n_groups)"})
    proposal: str = field(default="uniform", metadata={"help": "SGRO group proposal: uniform | advantage"})
    shaping: bool = field(default=True, metadata={"help": "add the potential Phi(end) - Phi(start) to each group"})
    lam: float = field(default=1.0, metadata={"help": "lambda of the shaping term"})
    credit: str = field(default="group", metadata={
        "help": "what a group's steps are credited with: group (its own return G_g, the paper) | "
                "to-go (the sum of its and all later groups' returns)"})
    baseline: str = field(default="group", metadata={
        "help": "none (the paper) | group (mean of the K rollouts of a problem) | batch (mean of the batch)"})
    scale_advantages: bool = field(default=False, metadata={"help": "divide advantages by their std (GRPO)"})
    kl_coef: float = field(default=0.0, metadata={"help": "k3 KL penalty to the starting policy (0 = off)"})
    clip_eps: float = field(default=0.0, metadata={"help": "PPO ratio clipping (0 = plain REINFORCE)"})
    epochs: int = field(default=1, metadata={"help": "optimizer steps over the same rollouts (PPO-style when > 1)"})
    micro_batch: int = field(default=512, metadata={"help": "(trajectory, step) pairs per forward/backward"})
    shards: int = field(default=0, metadata={
        "help": "the update's problems are rolled out in this many seeded shards, each process taking an "
                "equal share (0 = one per process); runs with the same shards draw the same rollouts "
                "on any number of processes"})

    def __post_init__(self):
        RunConfig.__post_init__(self)
        RewardConfig.__post_init__(self)
        for name in ("updates", "prompts", "rollouts", "w", "epochs", "micro_batch"):
            if getattr(self, name) < 1:
                raise MroError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.steps or any(s < 1 for s in self.steps):
            raise MroError(f"steps must be step counts >= 1, got {self.steps}")
        for name in ("groups", "shards"):
            if getattr(self, name) < 0:
                raise MroError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise MroError(f"RL rollouts must sample: temperature must be a finite number > 0, got {self.temperature}")
        if self.max_minutes is not None and not (math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise MroError(f"max_minutes must be a finite number > 0, got {self.max_minutes}")
        if self.baseline not in BASELINES:
            raise MroError(f"baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        if self.baseline == "group" and self.rollouts < 2:
            raise MroError("baseline 'group' needs rollouts >= 2 (the mean of one rollout is its own reward)")
        if self.credit not in CREDITS:
            raise MroError(f"credit must be one of {', '.join(CREDITS)}, got {self.credit!r}")
        if self.proposal not in ("uniform", "advantage"):
            raise MroError(f"proposal must be uniform or advantage, got {self.proposal!r}")
        for name in ("kl_coef", "clip_eps", "lam"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise MroError(f"{name} must be a finite number >= 0, got {v}")


def score_rollouts(reward: MultiReward, task, examples, traj: Trajectory, cfg: RLConfig,
                   generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """``[N, n_groups]`` SGRO group returns of the rollouts (docs/method.md sections 4 and 7)."""
    bounds = group_bounds(traj.steps_done, cfg.w)
    n, dev = traj.batch_size, traj.tokens.device
    terms: dict[str, float] = {}
    w = reward.weights
    intra = torch.zeros(n, len(bounds), device=dev)
    if w.w_tv or w.w_ppl:
        intra = reward.intra(traj, bounds, generator=generator).to(dev)
        terms["intra"] = float(intra.sum(1).mean())
    texts = reward.texts(traj)
    q = torch.tensor([quality_reward(task, ex, t, None, cfg.correct_weight, cfg.format_weight)
                      for ex, t in zip(examples, texts)], device=dev)
    terms["q"] = float(q.mean())
    terms["solved"] = float(torch.tensor([task.score(ex, t)[task.metrics[0]] for ex, t in zip(examples, texts)]).mean())
    phi = None
    if cfg.shaping:
        phi = reward.potentials(traj, [0] + [e for _, e in bounds], examples).to(dev)
        terms["phi_start"] = float(phi[:, 0].mean())
    returns = group_returns(intra, phi, q if w.w_q else None, lam=cfg.lam, w_q=w.w_q)
    if cfg.credit == "to-go":
        returns = returns.flip(1).cumsum(1).flip(1)
    return returns, terms


def advantages_of(returns: torch.Tensor, cfg: RLConfig, reduce_mean=None) -> torch.Tensor:
    """``A = G - b`` per group; ``group``: mean over the K rollouts of a problem (per group index),
    ``batch``: mean over every rollout of the update (all processes, through ``reduce_mean``)."""
    if cfg.baseline == "none":
        adv = returns.clone()
    elif cfg.baseline == "group":
        per = returns.view(-1, cfg.rollouts, returns.shape[1])
        adv = (per - per.mean(1, keepdim=True)).view_as(returns)
    else:
        mean = returns.mean(0, keepdim=True)
        if reduce_mean is not None:
            mean = reduce_mean(mean)
        adv = returns - mean
    if cfg.scale_advantages:  # per problem under the group baseline (GRPO), over the batch otherwise
        per = adv.view(-1, cfg.rollouts, adv.shape[1])
        std = per.std(1, keepdim=True) if cfg.baseline == "group" else adv.std()
        adv = (per / (std + 1e-4)).view_as(adv)
    return adv


def step_coefficients(returns: torch.Tensor, adv: torch.Tensor, bounds, cfg: RLConfig,
                      generator: torch.Generator) -> torch.Tensor:
    """``[N, steps]`` the weight of each step's log-prob: ``A_g`` times the group's sampling weight.

    Every group: weight ``1 / n_groups``. Sampled groups (``groups = n``): ``n`` draws from the
    proposal, each with ``1 / (n_groups * q_g * n)``, so the expectation equals the every-group
    loss (docs/method.md section 4).
    """
    n_groups = len(bounds)
    if cfg.groups == 0:
        weight = torch.full_like(adv, 1.0 / n_groups)
    else:
        idx, w = sample_groups(returns, cfg.groups, cfg.proposal, generator=generator)
        weight = torch.zeros_like(adv).scatter_add_(1, idx.to(adv.device), (w / cfg.groups).to(adv.dtype).to(adv.device))
    return expand_to_steps(weight * adv, bounds)


def policy_loss(model, traj: Trajectory, pairs: torch.Tensor, coef: torch.Tensor, cfg: RLConfig,
                banned: list[int], n_total: int, ref_model=None) -> tuple[torch.Tensor, float]:
    """The loss of one micro-batch of ``pairs [M, 2]`` (row, step); returns (loss, summed k3 KL).

    ``loss = -(1/n_total) * sum_pairs coef * sum_{i committed at t} f(logp_i)`` with ``f`` the
    log-prob itself (REINFORCE) or the clipped importance ratio against the rollout's log-prob
    (PPO), plus ``kl_coef`` times the k3 KL of the committed tokens to the reference policy.
    """
    rows, steps = pairs[:, 0], pairs[:, 1]
    commit = traj.commit_step[rows]
    committed = commit == steps[:, None]
    states = traj.tokens[rows].clone()
    resp = states[:, traj.prompt_length:]
    resp[commit >= steps[:, None]] = traj.mask_token_id
    tokens = traj.tokens[rows, traj.prompt_length:]
    attn = traj.attention_mask[rows]
    logp = committed_logprobs(model, states, attn, tokens, committed, traj.prompt_length, cfg.temperature, banned)
    c = coef[rows, steps][:, None]
    if cfg.clip_eps > 0 or cfg.epochs > 1:
        old = traj.logprob[rows].nan_to_num(0.0)
        ratio = torch.exp(logp - old)
        surr = ratio * c
        if cfg.clip_eps > 0:
            clipped = ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * c
            surr = torch.minimum(surr, clipped)
        per = -surr
    else:
        per = -c * logp
    per = torch.where(committed, per, torch.zeros_like(per))
    kl_sum = 0.0
    if ref_model is not None:
        with torch.no_grad(), reference_policy(ref_model) as ref:
            ref_logp = committed_logprobs(ref, states, attn, tokens, committed, traj.prompt_length,
                                          cfg.temperature, banned)
        d = ref_logp - logp
        k3 = torch.where(committed, torch.exp(d) - d - 1, torch.zeros_like(d))
        per = per + cfg.kl_coef * k3 * (coef[rows, steps] != 0)[:, None]
        kl_sum = float(k3.detach().sum())
    return per.sum() / n_total, kl_sum


def micro_batches(coef: torch.Tensor, n_chunks: int) -> list[torch.Tensor]:
    """The (row, step) pairs with a non-zero weight, split into exactly ``n_chunks`` chunks (an
    empty chunk becomes one zero-weight pair: every process runs the same number of backward passes)."""
    pairs = (coef != 0).nonzero()
    if len(pairs) == 0:
        pairs = torch.zeros(1, 2, dtype=torch.long, device=coef.device)
    chunks = list(torch.tensor_split(pairs, n_chunks))
    return [ch if len(ch) else pairs[:1] for ch in chunks]


@dataclass
class Layout:
    """How an update's problems spread over shards and processes."""

    shards: int          # seeded shards of the global batch
    mine: list[int]      # the shards this process rolls out
    shard_prompts: int   # problems per shard
    chunks: int          # micro-batches per shard and epoch

    @property
    def accumulation(self) -> int:
        return len(self.mine) * self.chunks


def plan(cfg: RLConfig, world: int, rank: int) -> Layout:
    shards = cfg.shards or world
    if shards % world:
        raise MroError(f"shards ({shards}) must be a multiple of the number of processes ({world})")
    if cfg.prompts % shards:
        raise MroError(f"prompts ({cfg.prompts}) must divide evenly into {shards} shard(s) (one per process by default)")
    per = shards // world
    shard_prompts = cfg.prompts // shards
    most = max(cfg.steps) if cfg.groups == 0 else min(max(cfg.steps), cfg.groups * cfg.w)
    chunks = max(1, math.ceil(shard_prompts * cfg.rollouts * most / cfg.micro_batch))
    return Layout(shards, list(range(rank * per, (rank + 1) * per)), shard_prompts, chunks)


def train_rl(cfg: RLConfig) -> Path:
    """Run (or, with ``resume``, continue) RL training; return the folder of the best model."""
    with runs.locked(cfg.out):
        return _train_rl(cfg)


def _train_rl(cfg) -> Path:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    task = get_task(cfg.task)
    source = runs.ProblemSource(task, cfg)
    probe = make_accelerator(cfg, 1)
    world, rank = probe.num_processes, probe.process_index
    layout = plan(cfg, world, rank)
    accelerator = make_accelerator(cfg, layout.accumulation)
    model = load_trainable(cfg, accelerator.device)  # a model that does not load leaves no run behind
    out = runs.open_run(cfg, accelerator)
    ref = None
    if cfg.kl_coef > 0:
        ref = model if cfg.lora_r else frozen_copy(model)
    opt, sched = optimizer_for(model, cfg, cfg.updates)
    raw = model.module
    prepared, opt, sched = accelerator.prepare(raw, opt, sched)
    model.module = prepared
    reward = MultiReward(model, task, cfg)
    run = runs.Tracker(cfg, accelerator, out, model, prepared, task, source.validation())
    if run.start == 0:
        run.validate(0)
    bar = tqdm(range(run.start, cfg.updates), initial=run.start, total=cfg.updates, desc=f"rl {cfg.task}",
               unit="upd", disable=not (cfg.progress and accelerator.is_main_process))
    for update in bar:
        if not run.budget_left():
            break
        t0 = time.time()
        record = rl_update(model, prepared, reward, task, source, cfg, update, opt, sched, accelerator, ref, layout)
        done = update + 1
        record.update({"kind": "train", "update": done,
                       "rollouts_per_s": round(cfg.prompts * cfg.rollouts / max(1e-9, time.time() - t0), 2)})
        run.log(record)
        bar.set_postfix(reward=f"{record['reward']:.3f}", solved=f"{record['solved']:.2f}")
        if done % cfg.val_every == 0:
            run.validate(done)
    best = run.finish(f"mro train rl: {cfg.model} on {cfg.task}")
    model.module = raw
    return best


def rollout_shard(model, reward, task, source, cfg: RLConfig, update: int, shard: int, layout: Layout):
    """Roll out and score one seeded shard: ``(trajectory, returns, terms, generator)``."""
    steps = cfg.steps[update % len(cfg.steps)]
    gen = torch.Generator(device=model.device).manual_seed((cfg.seed * 1_000_003 + update) * 4_096 + shard)
    lo = shard * layout.shard_prompts
    examples = source.batch(update, cfg.prompts)[lo:lo + layout.shard_prompts]
    prompts, responses, gen_length = runs.encode(task, model, examples, cfg.protocol, cfg.gen_length)
    k = cfg.rollouts
    rep_resp = None if responses is None else [r for r in responses for _ in range(k)]
    rep_examples = [ex for ex in examples for _ in range(k)]
    dc = runs.decode_settings(cfg, gen_length, steps, cfg.temperature)
    with torch.no_grad():
        traj = generate(model, [p for p in prompts for _ in range(k)], dc, responses=rep_resp, generator=gen)
        returns, terms = score_rollouts(reward, task, rep_examples, traj, cfg, gen)
    return traj, returns, terms, gen


def rl_update(model, prepared, reward, task, source, cfg: RLConfig, update: int, opt, sched, accelerator,
              ref, layout: Layout) -> dict:
    """One policy update: roll out this process's shards, score them, step the optimizer ``epochs`` times."""
    shards = [rollout_shard(model, reward, task, source, cfg, update, s, layout) for s in layout.mine]
    returns = torch.cat([r for _, r, _, _ in shards])
    reduce_mean = (lambda x: accelerator.reduce(x, "mean")) if accelerator.num_processes > 1 else None
    adv = advantages_of(returns, cfg, reduce_mean=reduce_mean)
    work, lo = [], 0
    for traj, ret, _, gen in shards:
        a = adv[lo:lo + traj.batch_size]
        lo += traj.batch_size
        coef = step_coefficients(ret, a, group_bounds(traj.steps_done, cfg.w), cfg, gen)
        work.append((traj, coef))
    n_rows = len(returns)
    banned = [model.mask_token_id]
    losses, kls, norms = [], [], []
    for _ in range(cfg.epochs):
        for traj, coef in work:
            for pairs in micro_batches(coef, layout.chunks):
                with accelerator.accumulate(prepared):
                    loss, kl = policy_loss(model, traj, pairs, coef, cfg, banned, n_rows, ref)
                    accelerator.backward(loss * layout.accumulation)  # accelerate divides by the accumulation
                    if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                        norm = accelerator.clip_grad_norm_(prepared.parameters(), cfg.max_grad_norm)
                        if norm is not None:  # DeepSpeed clips inside its own step and reports none
                            norms.append(float(norm))
                    opt.step()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
                kls.append(kl)
    terms: dict[str, float] = {}
    for _, _, t, _ in shards:
        for key, v in t.items():
            terms[key] = terms.get(key, 0.0) + v / len(shards)
    total = returns.sum(1).view(-1, cfg.rollouts)
    same = float((total.max(1).values - total.min(1).values < 1e-6).float().mean())
    n_committed = max(1, sum(int((traj.commit_step >= 0).sum()) for traj, _ in work))
    values = {"reward": float(returns.sum(1).mean()), **terms, "same_reward_frac": same,
              "loss": sum(losses) / cfg.epochs, "kl": sum(kls) / cfg.epochs / n_committed}
    if accelerator.num_processes > 1:  # every process holds an equal share: the mean of means
        joined = accelerator.reduce(torch.tensor(list(values.values()), device=model.device), "mean").tolist()
        values = dict(zip(values, joined))
    record = {key: round(v, 6) for key, v in values.items()}
    record["grad_norm"] = round(sum(norms) / max(1, len(norms)), 5)
    return record
