"""Run folders of the training benchmarks (train_sudoku.py, train_countdown.py,
train_countdown_rl.py): jobs side by side, their logs, what a finished run keeps.

A finished run keeps its settings (``run.json`` or ``train_config.json``), its summary and test
result (``eval.json``) and its log gzip-compressed (``log.jsonl.gz``): the per-update lines the
curves are redrawn from, in a seventh of the plain log's bytes (1.3 MB for the 9.1 MB of
logs the three benchmarks had committed). Weights, checkpoints and the
trainer's own per-run plot stay out of git (each results folder's ``.gitignore``).
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from mro.eval.harness import EvalConfig, run_eval
from mro.eval.records import hardware, now
from mro.io import atomic_write_json, read_json, read_jsonl

from common.recipes import REPO, command, recipe, train


@dataclass(frozen=True)
class Bench:
    """Where a training benchmark writes its runs and report, and what a smoke run changes."""

    root: Path
    overrides: tuple[tuple[str, str], ...] = ()  # config fields set on every run (``--set FIELD VALUE``)
    test_n: int | None = None  # test problems per evaluation (None: the benchmark's own)

    def run_dir(self, name: str) -> Path:
        return self.root / "runs" / name


def parse_bench_args(doc: str, root: Path, names, ship: str, more=None) -> tuple[argparse.Namespace, "Bench"]:
    """The command line of a training benchmark (``doc``: its docstring; ``names``: its arms or
    trials; ``ship``: what ``--ship`` copies into the package; ``more(parser)`` adds its own
    options) and its :class:`Bench`; this process's evaluations on one torch thread."""
    import torch

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, choices=list(names), help="arms to run (default: all)")
    parser.add_argument("--ship", action="store_true", help=ship)
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (one process and thread each)")
    parser.add_argument("--report-only", action="store_true", help="rebuild the tables from finished runs")
    parser.add_argument("--results", type=Path, default=root, help=f"results folder (default: {root})")
    parser.add_argument("--set", nargs=2, action="append", default=[], metavar=("FIELD", "VALUE"),
                        help="set a config field of every run, e.g. --set updates 3 (smoke runs)")
    parser.add_argument("--test-n", type=int, default=None, help="test problems per evaluation (smoke runs)")
    if more:
        more(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    (args.results / "runs").mkdir(parents=True, exist_ok=True)
    return args, Bench(args.results, tuple((k, v) for k, v in args.set), args.test_n)


#: log files a run may hold, plain (while it runs) or compressed (once finished)
LOGS = ("log.jsonl", "train_log.jsonl")


def read_log(run: Path) -> list[dict]:
    """The log rows of a run folder (``log.jsonl`` of the RS/RL trainers, ``train_log.jsonl`` of
    SFT), plain or compressed; ``[]`` if it has none."""
    for name in LOGS:
        for path in (run / name, run / f"{name}.gz"):
            if path.is_file():
                return read_jsonl(path)
    return []


def compress_log(run: Path) -> None:
    """Replace a finished run's plain log by its gzip copy (deterministic bytes: no timestamp)."""
    for name in LOGS:
        plain = run / name
        if plain.is_file():
            (run / f"{name}.gz").write_bytes(gzip.compress(plain.read_bytes(), compresslevel=9, mtime=0))
            plain.unlink()


def started(run: Path) -> bool:
    """Whether a run folder holds a run to resume: the RS/RL trainers write ``run.json`` first,
    SFT and AR their ``checkpoint.pt``."""
    return any((run / name).exists() for name in ("run.json", "checkpoint.pt", "checkpoint"))


def finished(run: Path) -> dict | None:
    """A finished run's record (``eval.json``), or None."""
    return read_json(run / "eval.json") if (run / "eval.json").is_file() else None


def record(run: Path, result: dict) -> dict:
    """Write a finished run's record and compress its log."""
    atomic_write_json(run / "eval.json", result)
    compress_log(run)
    return result


def train_arm(bench: Bench, task: str, arm: str, seed: int, start_from: str | None, test: Callable) -> dict:
    """Train one RS/RL arm and seed from its recipe in-process (resuming a partial run; from the kept
    model of arm ``start_from``, same seed, if given), then ``test(bench, best, folder)`` its kept
    model; the record is kept in eval.json, and a finished run is not run again."""
    out = bench.run_dir(f"{arm}-s{seed}")
    if done := finished(out):
        return done
    overrides = {"seed": seed, **dict(bench.overrides), "out": out}
    if start_from:
        overrides["model"] = bench.run_dir(f"{start_from}-s{seed}") / "best"
    path = recipe(task, arm)
    t0 = time.time()
    best = train(path, **overrides, resume=started(out))
    result = {"arm": arm, "seed": seed, "recipe": str(path.relative_to(REPO)), "command": command(path, **overrides),
              "wall_s": round(time.time() - t0, 1)}
    result["solved"] = test(bench, best, out / "eval")
    result.update(train_stats(out))
    return record(out, result)


def cpu_timed(fn: Callable, *args, **kwargs) -> tuple[object, dict]:
    """``fn(...)`` and its wall and CPU minutes (CPU of this process: one job per process)."""
    t0, c0 = time.time(), time.process_time()
    out = fn(*args, **kwargs)
    return out, {"wall_min": round((time.time() - t0) / 60, 2), "cpu_min": round((time.process_time() - c0) / 60, 2)}


def _safely(job):
    fn, args = job
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - a benchmark job, reported and skipped (a rerun retries it)
        print(f"{' '.join(map(str, args))} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def run_jobs(fn: Callable, jobs: Iterable[tuple], parallel: int) -> list:
    """``fn(*job)`` for every job, ``parallel`` at a time, each in a fresh process of its own (a
    trainer's ``max_minutes`` counts the CPU time of its process, and each job sets its own torch
    threads); with ``parallel`` 1, one after another in this process. A failing job is reported
    and skipped. ``fn`` must be a module-level function of the calling script."""
    jobs = [(fn, tuple(j)) for j in jobs]
    if parallel <= 1:
        return [_safely(j) for j in jobs]
    with ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1) as pool:
        return list(pool.map(_safely, jobs))


def evaluate(model: Path | str, out: Path, metric: str, **settings) -> dict:
    """``mro eval`` of a model (a fresh run in ``out``): percent of ``metric`` keyed by step count."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    s = run_eval(EvalConfig(model=str(model), out=str(out), batch_size=250, progress=False, **settings))
    return {str(r["steps"]): round(100 * r[metric], 2) for r in s["results"]}


def train_stats(run: Path) -> dict:
    """Updates, CPU minutes, best validation and median rollouts/s from an RS/RL run's log."""
    log = read_log(run)
    train = [r for r in log if r["kind"] == "train"]
    vals = [r for r in log if r["kind"] == "val"]
    best = max(vals, key=lambda r: r["score"])
    stats = {"updates": train[-1]["update"] if train else 0, "cpu_min": vals[-1]["cpu_min"],
             "best_update": best["update"], "best_val": {k: round(100 * v, 2) for k, v in best["solved"].items()}}
    rates = [r["rollouts_per_s"] for r in train if "rollouts_per_s" in r]
    if rates:
        stats["rollouts_per_s"] = round(statistics.median(rates), 1)
    return stats


def val_records(run: Path) -> list[dict]:
    return [x for x in read_log(run) if x["kind"] == "val"]


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def provenance(results_json: Path, report_only: bool) -> tuple[dict, str]:
    """Hardware and date for a report: those recorded with the runs when only the report is
    rebuilt (so ``--report-only`` reproduces the committed tables byte for byte), else this machine now."""
    if report_only and results_json.is_file():
        saved = read_json(results_json)
        if "hardware" in saved:
            return saved["hardware"], saved.get("date", "")
    return hardware(), now()
