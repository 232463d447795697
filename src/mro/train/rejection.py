"""Rejection sampling with the multi-reward (docs/method.md section 6).

``mro train rs`` runs in two phases, both resumable:

1. **collect**: for each training problem, decode with a reward-guided search (``tts-mro`` with
   ``k`` candidates per segment, or ``best-of-n``) and keep the chosen trajectory when its
   quality reward passes (``keep: correct`` keeps only verified-correct answers, ``all`` keeps
   every one). Each kept trajectory is one JSONL line (prompt ids, response tokens, commit-step
   map, rewards), appended batch by batch, so an interrupted collection resumes where it stopped.
2. **fine-tune**: the masked-diffusion loss on 2 random consecutive steps of each trajectory:
   given the state before step ``t``, cross-entropy on the positions committed at ``t``
   (``target: transition``) or on every still-masked position against the final tokens
   (``target: final``); gradients accumulate step by step.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from mro.errors import MroError
from mro.rewards.multi import MultiReward
from mro.rewards.perplexity import state_texts
from mro.sampling.batch import layout
from mro.sampling.trajectory import PREFILLED
from mro.search import SearchConfig, get_decoder
from mro.tasks import get_task
from mro.train import runs
from mro.train.runs import RunConfig
from mro.train.setup import load_trainable, make_accelerator, optimizer_for

COLLECTORS = ("tts-mro", "best-of-n")
TARGETS = ("transition", "final")


@dataclass
class RSConfig(RunConfig, SearchConfig):
    """Collect high-reward trajectories with TTS-MRO, then fine-tune on them (docs/method.md section 6)."""

    collect: str = field(default="tts-mro", metadata={"help": "search that picks the trajectories: tts-mro | best-of-n"})
    problems: int = field(default=2000, metadata={"help": "training problems to decode in the collection"})
    collect_steps: int = field(default=3, metadata={"help": "denoising steps of the collection decode"})
    collect_temperature: float = field(default=0.5, metadata={"help": "sampling temperature of the collection (> 0)"})
    collect_batch: int = field(default=250, metadata={"help": "problems per collection batch (one JSONL append)"})
    keep: str = field(default="correct", metadata={
        "help": "which trajectories are kept: correct (verified against the reference) | all"})
    dataset: str | None = field(default=None, metadata={
        "help": "fine-tune on this RS JSONL instead of collecting (default: <out>/rs_data.jsonl)"})
    target: str = field(default="transition", metadata={
        "help": "transition (CE on the positions committed at the step) | final (every masked position vs the final tokens)"})
    updates: int = field(default=300, metadata={"help": "fine-tuning optimizer steps"})
    max_minutes: float | None = field(default=None, metadata={
        "help": "stop fine-tuning after this many CPU-minutes of the process (None = no limit)"})
    batch_size: int = field(default=64, metadata={"help": "trajectories per fine-tuning step (2 steps each)"})

    def __post_init__(self):
        RunConfig.__post_init__(self)
        SearchConfig.__post_init__(self)
        for name in ("problems", "collect_steps", "collect_batch", "updates", "batch_size"):
            if getattr(self, name) < 1:
                raise MroError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.collect not in COLLECTORS:
            raise MroError(f"collect must be one of {', '.join(COLLECTORS)}, got {self.collect!r}")
        self.greedy_candidate = self.greedy_for(self.collect)  # recorded as the collection used it
        if not (math.isfinite(self.collect_temperature) and self.collect_temperature > 0):
            raise MroError(f"collect_temperature must be a finite number > 0 (a search needs diverse candidates), "
                           f"got {self.collect_temperature}")
        if self.keep not in ("correct", "all"):
            raise MroError(f"keep must be correct or all, got {self.keep!r}")
        if self.target not in TARGETS:
            raise MroError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.max_minutes is not None and not (math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise MroError(f"max_minutes must be a finite number > 0, got {self.max_minutes}")
        if self.dataset is not None and not Path(self.dataset).is_file():
            raise MroError(f"RS data set {self.dataset} does not exist")


# ---------------------------------------------------------------- the data set


def read_dataset(path: Path) -> list[dict]:
    """The RS data set; an empty file or a malformed line is a one-line error naming it.

    A torn last line (an interrupted append) is not an error: it is dropped, and collection
    redoes its batch.
    """
    if not path.is_file():
        raise MroError(f"RS data set {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise MroError(f"RS data set {path} is not UTF-8 text") from None
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not (isinstance(row, dict) and row.get("empty")):  # a batch that kept nothing
                _check_row(row)
        except (ValueError, TypeError, KeyError, MroError) as e:
            if i == len(lines) and not line.endswith("}"):
                break  # torn last append
            raise MroError(f"{path}:{i}: malformed RS row ({e})") from None
        rows.append(row)
    return rows


def _check_row(row: dict) -> None:
    for key in ("prompt", "tokens", "commit_step", "batch"):
        if key not in row:
            raise MroError(f"missing field {key!r}")
    if not (isinstance(row["prompt"], list) and isinstance(row["tokens"], list) and isinstance(row["commit_step"], list)):
        raise MroError("prompt, tokens and commit_step must be lists")
    if len(row["tokens"]) != len(row["commit_step"]) or not row["tokens"]:
        raise MroError("tokens and commit_step must be non-empty and of equal length")
    if not all(isinstance(x, int) for x in row["prompt"] + row["tokens"] + row["commit_step"]):
        raise MroError("ids and steps must be whole numbers")
    if not any(s >= 0 for s in row["commit_step"]):
        raise MroError("no position was committed by a decoding step")


def collect(model, task, source: runs.ProblemSource, cfg: RSConfig, path: Path, accelerator) -> None:
    """Decode ``cfg.problems`` training problems with the search; append kept trajectories to ``path``."""
    from accelerate.utils import gather_object

    done_batches = {r["batch"] for r in read_dataset(path)} if path.is_file() else set()
    if path.is_file() and accelerator.is_main_process:  # drop a torn last line before appending
        rows = read_dataset(path)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    n_batches = math.ceil(cfg.problems / cfg.collect_batch)
    decoder = get_decoder(cfg.collect)
    rank, world = accelerator.process_index, accelerator.num_processes
    search = SearchConfig(**{f: getattr(cfg, f) for f in SearchConfig.__dataclass_fields__})
    reward = MultiReward(model, task, search) if cfg.collect == "tts-mro" or search.select == "reward" else None
    bar = tqdm(range(n_batches), desc=f"rs collect ({cfg.collect})", unit="batch",
               disable=not (cfg.progress and accelerator.is_main_process), initial=len(done_batches))
    for b in range(n_batches):
        if b in done_batches:
            continue
        size = min(cfg.collect_batch, cfg.problems - b * cfg.collect_batch)
        examples = source.batch(b, size)[rank::world]
        rows = []
        if examples:
            prompts, responses, gen_length = runs.encode(task, model, examples, cfg.protocol, cfg.gen_length)
            dc = runs.decode_settings(cfg, gen_length, cfg.collect_steps, cfg.collect_temperature)
            gen = torch.Generator(device=model.device).manual_seed((cfg.seed * 7_919 + b) * 64 + rank)
            with torch.no_grad():
                result = decoder(model, prompts, responses, dc, generator=gen, task=task, search=search,
                                 reward=reward)
            traj = result.trajectory
            texts = state_texts(model, traj, traj.steps_done)
            for i, (ex, text) in enumerate(zip(examples, texts)):
                correct = float(task.score(ex, text)[task.metrics[0]])
                if cfg.keep == "correct" and correct < 1.0:
                    continue
                attn = traj.attention_mask[i].bool()
                prompt = traj.tokens[i, :traj.prompt_length][attn[:traj.prompt_length]].tolist()
                cs = traj.commit_step[i].clamp(max=traj.steps_done).tolist()
                rows.append({"batch": b, "id": ex.id, "prompt": prompt,
                             "tokens": traj.tokens[i, traj.prompt_length:].tolist(), "commit_step": cs,
                             "steps": traj.steps_done, "correct": correct, "nfe": result.nfe[i]})
        rows = gather_object(rows) if world > 1 else rows
        if accelerator.is_main_process:
            with path.open("a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in rows) if rows else
                        json.dumps({"batch": b, "empty": True}) + "\n")
        accelerator.wait_for_everyone()
        bar.update(1)
    bar.close()


# ---------------------------------------------------------------- fine-tuning


def transition_batch(rows: list[dict], pad_id: int, mask_id: int, target: str, generator: torch.Generator):
    """Two consecutive steps per trajectory: ``(tokens, attn, P, targets, weight)`` for each of the two.

    ``targets [B, G]`` is True where the loss reads the model (the positions committed at the
    step, or every position still masked); ``tokens`` is the state before the step.
    """
    prompts = [r["prompt"] for r in rows]
    responses = [r["tokens"] for r in rows]
    tokens, attn, p = layout(prompts, responses, pad_id)
    cs = torch.tensor([r["commit_step"] for r in rows])
    n_steps = torch.tensor([max(r["commit_step"]) + 1 for r in rows])
    first = (torch.rand(len(rows), generator=generator) * (n_steps - 1).clamp_min(1)).long()
    first = torch.minimum(first, (n_steps - 2).clamp_min(0))
    out = []
    for offset in (0, 1):
        t = (first + offset)[:, None]
        valid = (first + offset < n_steps)[:, None]
        state = tokens.clone()
        hidden = (cs >= t) & (cs != PREFILLED) & valid
        state[:, p:][hidden] = mask_id
        tgt = (cs == t) if target == "transition" else hidden
        out.append((state, attn, p, tokens[:, p:], tgt & valid))
    return out


def transition_loss(model, state, attn, p, final_tokens, tgt) -> torch.Tensor:
    """Mean cross-entropy of the model on the target positions (per trajectory, then over the batch)."""
    logits = model.logits(state, attn)[:, p:].float()
    ce = F.cross_entropy(logits.transpose(1, 2), final_tokens, reduction="none")
    per_row = (ce * tgt).sum(-1) / tgt.sum(-1).clamp_min(1)
    has = tgt.any(-1)
    return (per_row * has).sum() / has.sum().clamp_min(1)


def train_rs(cfg: RSConfig) -> Path:
    """Collect (resumable), then fine-tune (resumable); return the folder of the best model."""
    with runs.locked(cfg.out):
        return _train_rs(cfg)


def _train_rs(cfg) -> Path:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    task = get_task(cfg.task)
    source = runs.ProblemSource(task, cfg)
    accelerator = make_accelerator(cfg, 2)
    model = load_trainable(cfg, accelerator.device)  # a model that does not load leaves no run behind
    out = runs.open_run(cfg, accelerator)
    data_path = Path(cfg.dataset) if cfg.dataset else out / "rs_data.jsonl"
    if cfg.dataset is None and not runs.has_checkpoint(out):
        collect(model, task, source, cfg, data_path, accelerator)
    rows = [r for r in read_dataset(data_path) if "tokens" in r]
    if not rows:
        raise MroError(f"RS data set {data_path} holds no trajectories (none kept: try keep=all or more problems)")
    opt, sched = optimizer_for(model, cfg, cfg.updates)
    raw = model.module
    prepared, opt, sched = accelerator.prepare(raw, opt, sched)
    model.module = prepared
    run = runs.Tracker(cfg, accelerator, out, model, prepared, task, source.validation())
    if run.start == 0:
        run.log({"kind": "data", "update": 0, "trajectories": len(rows), "problems": cfg.problems,
                 "path": str(data_path)})
        run.validate(0)
    rank, world = accelerator.process_index, accelerator.num_processes
    bar = tqdm(range(run.start, cfg.updates), initial=run.start, total=cfg.updates, desc=f"rs {cfg.task}",
               unit="upd", disable=not (cfg.progress and accelerator.is_main_process))
    for update in bar:
        if not run.budget_left():
            break
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + update)
        pick = torch.randint(len(rows), (cfg.batch_size * world,), generator=g)[rank::world].tolist()
        losses = []
        for state_, attn, p, final_tokens, tgt in transition_batch([rows[i] for i in pick], model.pad_token_id,
                                                                   model.mask_token_id, cfg.target, g):
            with accelerator.accumulate(prepared):
                dev = model.device
                loss = transition_loss(model, state_.to(dev), attn.to(dev), p, final_tokens.to(dev), tgt.to(dev))
                accelerator.backward(loss)
                norm = None
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    value = accelerator.clip_grad_norm_(prepared.parameters(), cfg.max_grad_norm)
                    norm = None if value is None else float(value)  # DeepSpeed clips inside its step
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
        done = update + 1
        run.log({"kind": "train", "update": done, "loss": round(sum(losses) / 2, 6), "grad_norm": norm})
        bar.set_postfix(loss=f"{sum(losses) / 2:.4f}")
        if done % cfg.val_every == 0:
            run.validate(done)
    best = run.finish(f"mro train rs: {cfg.model} on {cfg.task}")
    model.module = raw
    return best
