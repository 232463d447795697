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

import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mro.errors import MroError
from mro.problems import encode
from mro.rewards.multi import MultiReward, RewardConfig
from mro.rewards.terms import parse_rewards
from mro.rewards.sgro import group_bounds
from mro.sampling import generate
from mro.tasks import get_task
from mro.train.config import includes, part
from mro.train.defaults import task_default
from mro.train.problems import RunConfig, decode_for_training, problem_source, validate_run
from mro.train.rl_objective import advantages_of, frozen_copy, micro_batches, policy_loss, step_coefficients
from mro.train.rl_returns import (SpreadScaler, advantage_shares, combine, score_pieces, trajectory_totals,
                                  within_problem_corr, within_problem_std)
from mro.train.setup import load_trainable
from mro.train.trainer import Plugin, Trainer

BASELINES = ("none", "group", "batch")
CREDITS = ("group", "to-go")


@dataclass
@includes(RewardConfig)
class RLConfig(RunConfig):
    """Train a diffusion LM with REINFORCE on the multi-reward, SGRO grouping (docs/method.md section 7)."""

    VERB = "rl"

    updates: int = field(default=400, metadata={"help": "policy updates (the run stops at this count or at max_minutes)",
                                                "min": 1})
    prompts: int = field(default=16, metadata={"help": "training problems per update (over all processes)", "min": 1})
    rollouts: int = field(default=8, metadata={"help": "K: rollouts per problem", "min": 1})
    steps: list[int] | None = field(default=None, metadata=task_default(
        "denoising steps of a rollout; a list (e.g. 2,3,4) cycles over updates", min=1))
    temperature: float | None = field(default=None, metadata=task_default("rollout temperature (> 0: the policy samples)",
                                                                          gt=0))
    rewards: str | None = field(default=None, metadata=task_default(
        "reward terms and weights, e.g. 'tv,ppl,q' or 'tv=1,q=0.5' (unlisted = off)"))
    format_weight: float | None = field(default=None, metadata=task_default("weight of the format term inside R_q"))
    w: int = field(default=1, metadata={"help": "SGRO: steps per group", "min": 1})
    groups: int = field(default=0, metadata={
        "help": "SGRO: groups drawn per trajectory for the update (0 = every group, weight 1/n_groups)", "min": 0})
    proposal: str = field(default="uniform", metadata={"help": "SGRO group proposal: uniform | advantage",
                                                       "choices": ("uniform", "advantage")})
    shaping: bool | None = field(default=None, metadata=task_default("add the potential Phi(end) - Phi(start) to each group"))
    lam: float = field(default=1.0, metadata={"help": "lambda of the shaping term", "min": 0})
    credit: str = field(default="to-go", metadata={
        "help": "what a group's steps are credited with: to-go (its and every later group's return, R_q "
                "included: the policy gradient of the cumulative return) | group (its own return G_g, the "
                "literal reading of Algorithm 1)", "choices": CREDITS})
    verifier: str = field(default="policy", metadata={
        "help": "which model reads R_tv: policy (the model being trained, the paper) | reference (the frozen "
                "starting model, the KL term's)", "choices": ("policy", "reference")})
    compare_verifiers: bool = field(default=True, metadata={
        "help": "with R_tv on, also read it with the other verifier on the same positions and log both "
                "(without LoRA this keeps a frozen copy of the model)"})
    judge: str = field(default="steps", metadata={
        "help": "where the intra rewards are read: steps (once per SGRO group, on its state) | final (once, on "
                "the finished response, credited to every step)", "choices": ("steps", "final")})
    intra_scale: str = field(default="spread", metadata={
        "help": "none (weights as given) | spread (each intra term divided by its running within-problem "
                "spread and multiplied by R_q's: a weight of 0.5 is half of R_q's spread)",
        "choices": ("none", "spread")})
    labels: str = field(default="reference", metadata={
        "help": "what R_q checks the answer against: reference (the problem's answer) | vote (the majority "
                "answer of the problem's K rollouts: label-free)", "choices": ("reference", "vote")})
    baseline: str = field(default="group", metadata={
        "help": "none (the paper) | group (mean of the K rollouts of a problem) | batch (mean of the batch)",
        "choices": BASELINES})
    scale_advantages: bool = field(default=False, metadata={"help": "divide advantages by their std (GRPO)"})
    kl_coef: float | None = field(default=None, metadata=task_default("k3 KL penalty to the starting policy (0 = off)",
                                                                      min=0))
    clip_eps: float = field(default=0.0, metadata={"help": "PPO ratio clipping (0 = plain REINFORCE)", "min": 0})
    epochs: int = field(default=1, metadata={"help": "optimizer steps over the same rollouts (PPO-style when > 1)",
                                             "min": 1})
    micro_batch: int = field(default=512, metadata={"help": "(trajectory, step) pairs per forward/backward", "min": 1})
    shards: int = field(default=0, metadata={
        "help": "the update's problems are rolled out in this many seeded shards, each process taking an "
                "equal share (0 = one per process); runs with the same shards draw the same rollouts "
                "on any number of processes", "min": 0})

    def __post_init__(self):
        super().__post_init__()
        self.reward = part(self, RewardConfig)  # the reward settings, checked as the reward layer checks them
        if not self.steps:
            raise MroError("steps must name at least one step count")
        if self.labels == "vote" and self.rollouts < 2:
            raise MroError("labels 'vote' needs rollouts >= 2 (a majority of one rollout is itself)")
        if self.baseline == "group" and self.rollouts < 2:
            raise MroError("baseline 'group' needs rollouts >= 2 (the mean of one rollout is its own reward)")


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


class RLTrainer(Plugin):
    """The RL plug-in of the spine: rollouts, SGRO returns and policy-gradient steps per update."""

    def __init__(self, cfg: RLConfig):
        self.cfg, self.task = cfg, get_task(cfg.task)
        self.source = problem_source(self.task, cfg)
        self.title = f"mro train rl: {cfg.model} on {cfg.task}"

    def accumulation(self, world: int, rank: int) -> int:
        self.layout = plan(self.cfg, world, rank)
        return self.layout.accumulation

    def make_model(self, device):
        return load_trainable(self.cfg, device)  # refuses a run the model cannot decode (check_run)

    def before_training(self, trainer) -> None:
        cfg = self.cfg
        tv = bool(parse_rewards(cfg.rewards)["tv"])
        self.ref = None
        if cfg.kl_coef > 0 or (tv and (cfg.verifier == "reference" or cfg.compare_verifiers)):
            self.ref = trainer.model if cfg.lora_r else frozen_copy(trainer.model)
        self.val_examples = self.source.validation()

    def state(self) -> dict:
        return self.scaler.state()

    def load_state(self, state: dict) -> None:
        self.scaler = SpreadScaler(state=state)  # intra_scale's running spreads, as the run left them

    def on_start(self, trainer) -> None:
        self.reward = MultiReward(trainer.model, self.task, self.cfg.reward)

    def validate(self, trainer):
        return validate_run(trainer, self.task, self.val_examples, self.cfg)

    def update(self, trainer, update: int) -> dict:
        t0 = time.time()
        record = rl_update(trainer, self, update)
        record["rollouts_per_s"] = round(self.cfg.prompts * self.cfg.rollouts / max(1e-9, time.time() - t0), 2)
        return record


def train_rl(cfg: RLConfig) -> Path:
    """Run (or, with ``resume``, continue) RL training; return the folder of the best model."""
    return Trainer(cfg, RLTrainer(cfg)).run()


def rollout_shard(model, reward, task, source, cfg: RLConfig, update: int, shard: int, layout: Layout, ref=None):
    """Roll out and read the reward terms of one seeded shard: ``(trajectory, pieces, generator)``."""
    steps = cfg.steps[update % len(cfg.steps)]
    gen = torch.Generator(device=model.device).manual_seed((cfg.seed * 1_000_003 + update) * 4_096 + shard)
    lo = shard * layout.shard_prompts
    examples = source.batch(update, cfg.prompts)[lo:lo + layout.shard_prompts]
    enc = encode(task, model, examples, cfg.protocol, cfg.gen_length)
    k = cfg.rollouts
    rep_resp = None if enc.responses is None else [r for r in enc.responses for _ in range(k)]
    rep_examples = [ex for ex in examples for _ in range(k)]
    dc = decode_for_training(enc.gen_length, steps, cfg.temperature, cfg.block_length, cfg.cache,
                             cfg.cache_refresh)
    with torch.no_grad():
        traj = generate(model, [p for p in enc.prompts for _ in range(k)], dc, responses=rep_resp, generator=gen)
        pieces = score_pieces(reward, task, rep_examples, traj, cfg, gen, ref=ref)
    return traj, pieces, gen


def term_values(shards, totals: list[dict], cfg: RLConfig, factors: dict, parts: dict, adv: torch.Tensor) -> dict:
    """The log values of the reward terms (docs/method.md section 7): per term its mean, its
    within-problem spread, its within-problem correlation with correctness, its scale factor and
    its share of the advantage's variance."""
    k = cfg.rollouts
    correct = torch.cat([p.correct for _, p, _ in shards])
    out = {"solved": float(correct.mean())}
    for name in totals[0]:
        x = torch.cat([t[name] for t in totals])
        out[f"{name}_mean"] = float(x.mean())
        out[f"{name}_std"] = within_problem_std(x, k)
        out[f"{name}_corr"] = within_problem_corr(x, correct, k)
        if name in factors:
            out[f"{name}_scale"] = factors[name]
    if shards[0][1].other_tv is not None:
        other = torch.cat([p.other_tv.sum(1) for _, p, _ in shards])
        tag = "tv_policy" if cfg.verifier == "reference" else "tv_reference"
        out[f"{tag}_mean"] = float(other.mean())
        out[f"{tag}_corr"] = within_problem_corr(other, correct, k)
    for name, share in advantage_shares(parts, adv, k, cfg.baseline).items():
        out[f"{name}_share"] = share
    return out


def rl_update(trainer, rl: RLTrainer, update: int) -> dict:
    """One policy update: roll out this process's shards, score them, step the optimizer ``epochs`` times."""
    cfg, model, layout = rl.cfg, trainer.model, rl.layout
    shards = [rollout_shard(model, rl.reward, rl.task, rl.source, cfg, update, s, layout, rl.ref) for s in layout.mine]
    factors: dict[str, float] = {}
    totals = [trajectory_totals(p) for _, p, _ in shards]  # each term's sum over a trajectory, per shard
    if cfg.intra_scale == "spread" and shards[0][1].intra:
        spreads = {name: sum(within_problem_std(t[name], cfg.rollouts) for t in totals) / len(totals)
                   for name in totals[0] if name in (*shards[0][1].intra, "q")}
        spreads = trainer.mean_over_processes(spreads)
        factors = rl.scaler.update(spreads)
    combined = [combine(p, cfg, rl.reward.weights, factors) for _, p, _ in shards]
    returns = torch.cat([r for r, _ in combined])
    parts = {name: torch.cat([c[name] for _, c in combined]) for name in combined[0][1]}
    acc = trainer.acc
    reduce_mean = (lambda x: acc.reduce(x, "mean")) if acc.num_processes > 1 else None
    adv = advantages_of(returns, cfg, reduce_mean=reduce_mean)
    work, lo = [], 0
    for (traj, _, gen), (ret, _) in zip(shards, combined):
        a = adv[lo:lo + traj.batch_size]
        lo += traj.batch_size
        work.append((traj, step_coefficients(ret, a, group_bounds(traj.steps_done, cfg.w), cfg, gen)))
    n_rows, banned = len(returns), [model.mask_token_id]
    loss_sum, kls, norms = 0.0, [], []
    gaps: list[tuple[float, int]] = []  # |rollout - recomputed| log-probs, first epoch (the rollout's weights)

    def micro_loss(traj, pairs, coef):
        loss, kl = policy_loss(model, traj, pairs, coef, cfg, banned, n_rows, rl.ref if cfg.kl_coef > 0 else None,
                               logp_gap=gaps if epoch == 0 else None)
        kls.append(kl)
        return loss

    for epoch in range(cfg.epochs):
        total, epoch_norms = trainer.step(functools.partial(micro_loss, traj, pairs, coef)
                                          for traj, coef in work for pairs in micro_batches(coef, layout.chunks))
        loss_sum += total
        norms += epoch_norms
    terms = term_values(shards, totals, cfg, factors, parts, adv)
    total = returns.sum(1).view(-1, cfg.rollouts) if cfg.credit == "group" else returns[:, 0].view(-1, cfg.rollouts)
    same = float((total.max(1).values - total.min(1).values < 1e-6).float().mean())
    n_committed = max(1, sum(int((traj.commit_step >= 0).sum()) for traj, _ in work))
    values = trainer.mean_over_processes({"reward": float(total.mean()), **terms, "same_reward_frac": same,
                                          "loss": loss_sum / cfg.epochs, "kl": sum(kls) / cfg.epochs / n_committed,
                                          "rollout_logp_gap": sum(g for g, _ in gaps) / max(1, sum(n for _, n in gaps))})
    record = {key: round(v, 6) for key, v in values.items()}
    record["grad_norm"] = round(sum(norms) / max(1, len(norms)), 5)
    return record
