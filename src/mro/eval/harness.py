"""``mro eval``: a model x task x decoding grid -> per-example JSONL, summary, table, PNG.

Every row and the summary record the model, task, data, protocol, decoding settings, seed and
hardware. Rows are appended batch by batch and flushed, so an interrupted run resumes where it
stopped (same ``--out``) and loses nothing already written. One run at a time per folder (a
lock on ``--out``); a resumed run must have the same settings, batch size and device included
(``eval_config.json``); a corrupt row is reported and dropped alone, then recomputed. Batch ``j`` of a setting always
holds the same examples and draws its noise from ``seed`` and ``j``, so results do not depend
on how a run was split (resumed, or sharded over ``accelerate launch`` processes).

Several processes: ``accelerate launch -m mro eval ...`` (one per GPU); on CPU,
``accelerate launch --multi_gpu --num_processes N -m mro eval --device cpu ...`` (``--cpu`` would
start a single process). Each writes ``examples.rank{r}.jsonl``; rank 0 merges them in the order
one process writes and records ``hardware.processes`` in the summary.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tqdm import tqdm

from mro.config import changed_fields, parse_options, to_dict  # noqa: F401  (parse_options re-exported: mro.eval.harness.parse_options)
from mro.errors import MroError
from mro.eval.records import append_jsonl, hardware, now, read_jsonl, repair_jsonl
from mro.eval.report import accuracy_plot, markdown_table
from mro.eval.setup import (EvalConfig, EvalSetup, Setting, batch_generator, decode_config,  # noqa: F401
                            load_examples, parse_hub_data, prepare_eval, step_grid)
from mro.io import OutputLock, atomic_write_json, atomic_write_text, read_json

__all__ = ["EvalConfig", "run_eval", "summarize"]


def _distributed(cpu: bool):
    """``(rank, world, state)`` under ``accelerate launch``; ``(0, 1, None)`` otherwise.

    ``cpu``: the processes evaluate on the CPU and talk over gloo. accelerate must be told: without
    it, processes on a machine with no GPU would each run alone and all write every row.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched <= 1:
        return 0, 1, None
    from accelerate import PartialState

    state = PartialState(cpu=cpu)
    if state.num_processes != launched:
        raise MroError(f"{launched} processes were launched but accelerate set up {state.num_processes}; "
                       "use accelerate launch --multi_gpu --num_processes N (on CPU add --device cpu)")
    return state.process_index, state.num_processes, state


def run_eval(cfg: EvalConfig) -> dict:
    """Run (or resume) the grid; write outputs to ``cfg.out``; return the summary."""
    from mro.models.hf import resolve_device

    device = resolve_device(cfg.device)
    rank, world, state = _distributed(cpu=device.type != "cuda")
    setup = prepare_eval(cfg, device=str(state.device if state is not None and device.type == "cuda" else device))
    with OutputLock(cfg.out) if rank == 0 else _no_lock(cfg.out) as out:
        return _run_locked(setup, out, rank, world, state)


def _no_lock(out: str):
    """Ranks other than 0 of one launch share rank 0's lock."""
    import contextlib

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return contextlib.nullcontext(path)


def _key(row: dict) -> tuple:
    """What identifies a row in an output folder (rows written before thresholds swept have none)."""
    return row["decode"], row["steps"], row.get("threshold"), row["index"]


def _run_locked(setup: EvalSetup, out: Path, rank: int, world: int, state) -> dict:
    cfg, task, model = setup.cfg, setup.task, setup.model
    final = out / "examples.jsonl"
    mine = final if world == 1 else out / f"examples.rank{rank}.jsonl"
    _check_same_run(out, cfg, model.device.type)
    repair_jsonl(mine)
    done = {_key(r) for p in [final, *out.glob("examples.rank*.jsonl")] for r in read_jsonl(p)}
    jobs = [(st, j) for st in setup.grid for j in range(setup.n_batches) if j % world == rank]
    bar = tqdm(jobs, desc=f"eval {cfg.model} on {cfg.task}", unit="batch",
               disable=not cfg.progress or rank != 0)
    for st, j in bar:
        # the whole batch is decoded again (same padding, same noise); only missing rows are written
        idx = setup.batch(j)
        todo = [i for i in idx if (cfg.decode, st.steps, st.threshold, i) not in done]
        if not todo:
            continue
        t0 = time.perf_counter()
        res = setup.run(st, idx, batch_generator(cfg.seed, st.steps, j, model.device))
        seconds = time.perf_counter() - t0
        texts = [model.tokenizer.decode(r.tolist()) for r in res.trajectory.response.cpu()]
        rows = []
        for b, i in enumerate(idx):
            if i not in todo:
                continue
            ex = setup.examples[i]
            rows.append({"decode": cfg.decode, "steps": st.steps, "threshold": st.threshold,
                         "tokens_per_step": st.tokens_per_step, "index": i, "id": ex.id,
                         "response": texts[b], "extracted": _jsonable(task.extract(texts[b])),
                         "answer": _jsonable(ex.answer), "metrics": task.score(ex, texts[b]),
                         "nfe": res.nfe[b], "tokens": setup.problems.masks[i], "batch_steps": res.trajectory.steps_done,
                         "scorer_calls": res.scorer_calls[b] if res.scorer_calls else 0.0,
                         "seconds": seconds / len(idx), **(res.details[b] if res.details else {})})
        append_jsonl(mine, rows)
    if state is not None:
        state.wait_for_everyone()
    if rank != 0:
        return {}
    if world > 1:
        _merge_shards(out, final, setup.grid)
    summary = summarize(setup, read_jsonl(final))
    summary["hardware"]["processes"] = world
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "table.md", markdown_table(summary))
    summary["plot"] = str(accuracy_plot(summary, out / "accuracy_vs_steps.png"))
    summary["table"] = str(out / "table.md")
    return summary


#: fields that may differ between runs sharing an output folder (rows are keyed by decode, steps and threshold;
#: everything else changes results, batch size included: it sets each batch's padding and noise)
_PER_RUN = ("steps", "tokens_per_step", "threshold", "decode", "progress", "out")


def _check_same_run(out: Path, cfg: EvalConfig, device_type: str = "cpu") -> None:
    """Refuse to mix rows of different settings in one folder; remember this run's settings.

    ``device`` is recorded as the device type the run used (``auto`` on a CPU machine is ``cpu``):
    CUDA and CPU draw different noise.
    """
    path = out / "eval_config.json"
    mine = {k: v for k, v in to_dict(cfg).items() if k not in _PER_RUN}
    mine["device"] = device_type
    mine = json.loads(json.dumps(mine))  # as it reads back (tuples as lists)
    if path.is_file():
        old = read_json(path, "run settings file")
        if not isinstance(old, dict):
            raise MroError(f"{path} is damaged (not a JSON object); use a new --out")
        diff = changed_fields(old, mine, type(cfg))
        if diff:
            raise MroError(f"{out} holds results of a run with another {diff[0]} "
                           f"({old.get(diff[0])!r}, now {mine.get(diff[0])!r}); resume with the same "
                           "settings or use a new --out")
    else:  # atomic: under accelerate launch another process may be reading it
        atomic_write_json(path, mine)


def _jsonable(x):
    return x if isinstance(x, (str, int, float, bool, type(None), list, dict)) else str(x)


def _merge_shards(out: Path, final: Path, grid: list[Setting]) -> None:
    """Append the processes' rows to ``final`` in the order one process writes them: rows already
    there first, then by position of the setting in the grid, then by example index."""
    old = read_jsonl(final)
    seen = {_key(r) for r in old}
    new = {}
    for shard in sorted(out.glob("examples.rank*.jsonl")):
        for r in read_jsonl(shard):
            if _key(r) not in seen:
                new.setdefault(_key(r), r)
    pos = {(st.steps, st.threshold): i for i, st in enumerate(grid)}
    order = sorted(new, key=lambda k: (pos.get(k[1:3], len(pos)), -k[1], k[0], k[3]))
    tmp = final.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    append_jsonl(tmp, old + [new[k] for k in order])
    tmp.replace(final)
    for shard in out.glob("examples.rank*.jsonl"):
        shard.unlink()


def summarize(setup: EvalSetup, rows: list[dict]) -> dict:
    """Mean of every metric per grid setting, its cost (forwards per example, tokens per forward),
    with what produced it (docs/method.md section 8, "Accuracy per forward")."""
    cfg, task = setup.cfg, setup.task
    results = []
    for st in setup.grid:
        sel = [r for r in rows if _key(r)[:3] == (cfg.decode, st.steps, st.threshold)]
        if not sel:
            continue
        entry = {"decode": cfg.decode, "steps": st.steps, "threshold": st.threshold,
                 "tokens_per_step": round(st.tokens_per_step, 3), "n": len(sel)}
        for m in task.metrics:
            entry[m] = sum(r["metrics"][m] for r in sel) / len(sel)
        forwards = sum(r["nfe"] for r in sel)
        entry["nfe_per_example"] = forwards / len(sel)
        tokens = sum(r.get("tokens", setup.problems.masks[r["index"]]) for r in sel)
        entry["tokens_per_forward"] = tokens / forwards if forwards else 0.0
        if all("batch_steps" in r for r in sel):  # the steps the example's batch ran (its slowest row's)
            entry["batch_steps_per_example"] = sum(r["batch_steps"] for r in sel) / len(sel)
        entry["scorer_calls_per_example"] = sum(r.get("scorer_calls", 0.0) for r in sel) / len(sel)
        entry["seconds"] = sum(r["seconds"] for r in sel)
        results.append(entry)
    decoding = to_dict(setup.grid[0].decode)
    decoding.pop("steps")
    decoding["threshold"] = cfg.threshold
    if cfg.decode != "vanilla":
        decoding["search"] = {k: getattr(cfg, k) for k in ("k", "w", "select", "rewards", "tv_tokens", "ppl_scorer",
                                                          "ppl_upper", "ppl_scale", "group_reward")}
    return {"model": setup.model.describe(), "task": task.name, "metrics": list(task.metrics), "data": setup.source,
            "n_examples": len(setup.examples), "protocol": cfg.protocol, "decode": cfg.decode, "decoding": decoding,
            "seed": cfg.seed, "hardware": hardware(), "date": now(), "config": to_dict(cfg), "results": results}
