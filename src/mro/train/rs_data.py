"""The data set of rejection sampling (docs/method.md section 6): collection by a reward-guided
search, one JSONL line per kept trajectory (prompt ids, response tokens, commit-step map,
rewards), appended batch by batch so that an interrupted collection resumes where it stopped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from tqdm import tqdm

from mro.errors import MroError
from mro.problems import encode
from mro.rewards.multi import MultiReward
from mro.rewards.perplexity import state_texts
from mro.search import get_decoder
from mro.train.problems import ProblemSource, decode_for_training


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


def collect(model, task, source: ProblemSource, cfg, path: Path, accelerator) -> None:
    """Decode ``cfg.problems`` training problems with the search; append kept trajectories to ``path``."""
    from accelerate.utils import gather_object

    done_batches = {r["batch"] for r in read_dataset(path)} if path.is_file() else set()
    if path.is_file() and accelerator.is_main_process:  # drop a torn last line before appending
        rows = read_dataset(path)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    n_batches = math.ceil(cfg.problems / cfg.collect_batch)
    decoder = get_decoder(cfg.collect)
    rank, world = accelerator.process_index, accelerator.num_processes
    search = cfg.search
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
            enc = encode(task, model, examples, cfg.protocol, cfg.gen_length)
            dc = decode_for_training(enc.gen_length, cfg.collect_steps, cfg.collect_temperature, cfg.block_length,
                                     cfg.cache, cfg.cache_refresh)
            gen = torch.Generator(device=model.device).manual_seed((cfg.seed * 7_919 + b) * 64 + rank)
            with torch.no_grad():
                result = decoder(model, enc.prompts, enc.responses, dc, generator=gen, task=task, search=search,
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
