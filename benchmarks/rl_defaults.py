"""What a new user gets from the trainers' defaults (docs/method.md section 7, "Defaults per task"):
``mro train rl|rs --model M`` with no other flag than the ones below, then the README's test set.

    mro train rl --model sudoku-tiny --max-minutes 5
    mro train rl --model countdown-tiny --task countdown --max-minutes 6
    mro train rs --model sudoku-tiny
    mro train rs --model countdown-tiny --task countdown

Each run goes through ``mro.cli.main`` exactly as typed (torch's default threads: run one at a
time, ``--jobs 1``, for the budget to mean what a user gets), then its kept model is decoded
greedily on the README's test problems and compared with the starting model.

    python benchmarks/rl_defaults.py [--only rl-sudoku rl-countdown rs-sudoku rs-countdown]
    -> benchmarks/results/rl_defaults/{results.md,results.json,runs/*}
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from mro.io import atomic_write_json, atomic_write_text

from common.runs import evaluate, finished, parse_bench_args, provenance, record, started, train_stats

ROOT = Path(__file__).resolve().parent / "results" / "rl_defaults"
TESTS = {"sudoku": (dict(task="sudoku", n=500, task_options="min_blanks=10,max_blanks=12", data_seed=1234),
                    (12, 4, 3, 2), "solved"),
         "countdown": (dict(task="countdown", n=1000, task_options="n_numbers=3,max_number=100,max_target=100",
                            data_seed=1234), (20, 10, 5), "correct")}
#: name -> (task, the command's arguments after `mro`)
RUNS = {
    "rl-sudoku": ("sudoku", ["train", "rl", "--model", "sudoku-tiny", "--max-minutes", "5"]),
    "rl-countdown": ("countdown", ["train", "rl", "--model", "countdown-tiny", "--task", "countdown",
                                   "--max-minutes", "6"]),
    "rs-sudoku": ("sudoku", ["train", "rs", "--model", "sudoku-tiny"]),
    "rs-countdown": ("countdown", ["train", "rs", "--model", "countdown-tiny", "--task", "countdown"]),
}
START = {"sudoku": "sudoku-tiny", "countdown": "countdown-tiny"}
#: torch's own thread count, before parse_bench_args sets this process's evaluations to one thread
DEFAULT_THREADS = torch.get_num_threads()


def test(task: str, model, out: Path, n: int | None) -> dict:
    settings, steps, metric = TESTS[task]
    return evaluate(model, out, metric, steps=list(steps), seed=0, **{**settings, "n": n or settings["n"]})


def run(bench, name: str) -> dict:
    from mro.cli import main

    task, argv = RUNS[name]
    out = bench.run_dir(name)
    if done := finished(out):
        return done
    argv = [*argv, "--progress", "false", "--out", str(out), *(["--resume"] if started(out) else [])]
    for key, value in bench.overrides:
        argv += [f"--{key.replace('_', '-')}", value]
    t0 = time.time()
    torch.set_num_threads(DEFAULT_THREADS)  # as `mro train` starts: --threads 0 leaves torch's default
    code = main(argv)
    torch.set_num_threads(1)
    if code != 0:
        raise RuntimeError(f"mro {' '.join(argv)} failed")
    result = {"name": name, "command": "mro " + " ".join(RUNS[name][1]), "wall_s": round(time.time() - t0, 1),
              "settings": json.loads((out / "run.json").read_text())}
    result["solved"] = test(task, out / "best", out / "eval", bench.test_n)
    result.update(train_stats(out))
    return record(out, result)


def main() -> None:
    args, bench = parse_bench_args(__doc__, ROOT, RUNS, "(not used)")
    if not args.report_only:
        for task, model in START.items():
            path = bench.root / f"start-{task}.json"
            if not path.is_file():
                atomic_write_json(path, test(task, model, bench.run_dir(f"start-{task}-eval"), bench.test_n))
        for name in args.only or RUNS:
            run(bench, name)  # one at a time, in this process: the commands' own thread counts
    hw, date = provenance(bench.root / "results.json", args.report_only)
    lines = ["# The trainers from their defaults", "",
             f"Each command exactly as a new user types it (plus `--out`), torch's default threads, one run at a "
             f"time; kept model = best validation; test: the README's problems, greedy. Made by "
             f"`python benchmarks/rl_defaults.py` ({date}).", "",
             "| command | test steps | start | trained | gain | CPU-min | updates | best update |", "|---|---|---|---|---|---|---|---|"]
    results = {}
    for name, (task, _) in RUNS.items():
        r = finished(bench.run_dir(name))
        if not r:
            continue
        start = json.loads((bench.root / f"start-{task}.json").read_text())
        results[name] = r
        steps = TESTS[task][1]
        lines.append(f"| `{r['command']}` | " + " / ".join(map(str, steps)) + " | "
                     + " / ".join(f"{start[str(s)]:.1f}" for s in steps) + " | "
                     + " / ".join(f"{r['solved'][str(s)]:.1f}" for s in steps) + " | "
                     + " / ".join(f"{r['solved'][str(s)] - start[str(s)]:+.1f}" for s in steps)
                     + f" | {r['cpu_min']:.1f} | {r['updates']} | {r['best_update']} |")
    lines += ["", f"Hardware: {json.dumps(hw)}"]
    atomic_write_text(bench.root / "results.md", "\n".join(lines) + "\n")
    atomic_write_json(bench.root / "results.json", {"runs": results, "hardware": hw, "date": date})
    print((bench.root / "results.md").read_text())


if __name__ == "__main__":
    main()
