"""Accuracy with the KV cache (``--cache prefix | dual``, docs/method.md section 2) against the
uncached sampler, on the shipped tiny models with blocks shorter than the response.

Sudoku (``sudoku-tiny``, 16 response positions, the givens pre-filled) at blocks 4 and 8 and
Countdown (``countdown-tiny``, 20 positions) at blocks 5 and 10, at fixed schedules (several
steps per block: with one step per block every step refills the cache and the modes are equal by
construction) and at confidence threshold 0.9 (Fast-dLLM's combination); temperature 0, the 500
test problems ``mro eval`` uses by default (generated with seed 1234). Reported: solved % per
mode, its difference from ``none`` (the floor: within 1 point), the share of committed tokens
equal to ``none``'s, and forwards per problem.

    python benchmarks/cache_accuracy.py    # -> benchmarks/results/cache/cache_accuracy.{md,json}
"""

from __future__ import annotations

from pathlib import Path

import torch

from mro.eval.records import hardware, now, save_report
from mro.models import load_model
from mro.rewards.perplexity import state_texts
from mro.sampling import DecodeConfig
from mro.search import get_decoder
from mro.tasks import get_task
from mro.tasks.base import tiny_batch

RESULTS = Path(__file__).parent / "results" / "cache"
N, DATA_SEED, BATCH = 500, 1234, 250
MODES = ("none", "prefix", "dual")
#: (model, task, block length, steps or None for threshold decoding)
SETTINGS = [
    ("sudoku-tiny", "sudoku", 4, 16), ("sudoku-tiny", "sudoku", 4, 8), ("sudoku-tiny", "sudoku", 4, None),
    ("sudoku-tiny", "sudoku", 8, 16), ("sudoku-tiny", "sudoku", 8, 8), ("sudoku-tiny", "sudoku", 8, 4),
    ("sudoku-tiny", "sudoku", 8, None),
    ("countdown-tiny", "countdown", 5, 20), ("countdown-tiny", "countdown", 5, 8), ("countdown-tiny", "countdown", 5, None),
    ("countdown-tiny", "countdown", 10, 20), ("countdown-tiny", "countdown", 10, 10),
    ("countdown-tiny", "countdown", 10, None),
]
THRESHOLD = 0.9


def decode(model, task, examples, block: int, steps: int | None, mode: str):
    """Solved flags, responses and forwards per problem of one setting."""
    gen = task.tiny_gen_length
    cfg = DecodeConfig(gen_length=gen, steps=steps or gen, block_length=block, cache=mode,
                       threshold=None if steps else THRESHOLD)
    solved, responses, forwards = [], [], 0
    for i in range(0, len(examples), BATCH):
        batch = examples[i:i + BATCH]
        prompts, filled = tiny_batch(task, batch, model.tokenizer)
        result = get_decoder("vanilla")(model, prompts, filled, cfg)
        traj = result.trajectory
        forwards += sum(result.nfe)
        texts = state_texts(model, traj, traj.steps_done)
        solved += [task.score(ex, t)[task.metrics[0]] for ex, t in zip(batch, texts)]
        responses.append(traj.response)
    return torch.tensor(solved), torch.cat(responses), forwards / len(examples)


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    models, problems = {}, {}
    for name, task_name, block, steps in SETTINGS:
        model = models.setdefault(name, load_model(name))
        task = get_task(task_name)
        examples = problems.setdefault(task_name, task.generate(N, seed=DATA_SEED, split="test"))
        runs = {mode: decode(model, task, examples, block, steps, mode) for mode in MODES}
        base_solved, base_resp, _ = runs["none"]
        for mode, (solved, resp, fwd) in runs.items():
            rows.append({"model": name, "task": task_name, "block": block,
                         "schedule": f"{steps} steps" if steps else f"threshold {THRESHOLD}", "cache": mode,
                         "solved": round(100 * float(solved.float().mean()), 1),
                         "delta": round(100 * float(solved.float().mean() - base_solved.float().mean()), 1),
                         "same_tokens": round(100 * float((resp == base_resp).float().mean()), 1),
                         "forwards": round(fwd, 2)})
            print(rows[-1], flush=True)
    worst = max(abs(r["delta"]) for r in rows)
    lines = ["| model | block | schedule | cache | solved % | vs none | same tokens % | forwards / problem |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['block']} | {r['schedule']} | {r['cache']} | {r['solved']:.1f} | "
              f"{r['delta']:+.1f} | {r['same_tokens']:.1f} | {r['forwards']:.2f} |" for r in rows]
    hw = hardware()
    lines += ["", f"{N} test problems per task (generated, seed {DATA_SEED}), temperature 0, low-confidence "
              f"remasking; largest |difference from none|: {worst:.1f} points (floor: 1). {hw['processor']}, "
              f"one thread, torch {hw['torch']}; {now()}."]
    save_report(RESULTS, "cache_accuracy", lines, {"n": N, "data_seed": DATA_SEED, "threshold": THRESHOLD,
                                                   "rows": rows, "largest_difference": worst})


if __name__ == "__main__":
    main()
