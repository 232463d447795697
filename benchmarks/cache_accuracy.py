"""Accuracy with the KV cache (``--cache prefix | dual``, docs/method.md section 2) against the
uncached sampler, on the shipped tiny models with blocks shorter than the response.

Sudoku (``sudoku-tiny``, 16 response positions, the givens pre-filled) at blocks 4 and 8 and
Countdown (``countdown-tiny``, 20 positions) at blocks 5 and 10, at fixed schedules (several
steps per block: with one step per block every step refills the cache and the modes are equal by
construction) and at confidence threshold 0.9 (Fast-dLLM's combination); temperature 0, the 500
test problems ``mro eval`` uses by default (generated with seed 1234). Reported: solved % per
mode, its difference from ``none`` (the floor: within 1 point), the share of committed tokens
equal to ``none``'s, and forwards per problem.

Why the cache costs accuracy where it does: the cache is exact only while the cached positions'
keys and values do not change, and in a bidirectional model they change as the block is
committed. ``drift`` measures by how much, on the uncached decode of the first 100 problems: the
relative change ``|kv(block end) - kv(block start)| / |kv(block start)|`` of the prompt's and the
finished blocks' keys and values, per layer, averaged over the blocks after the first.

    python benchmarks/cache_accuracy.py    # -> benchmarks/results/cache/cache_accuracy.{md,json}
"""

from __future__ import annotations

from pathlib import Path

import torch

from mro.eval.records import hardware, now, save_report
from mro.models import load_model
from mro.rewards.perplexity import state_texts
from mro.sampling import DecodeConfig, generate
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
DRIFT_N = 100


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


@torch.no_grad()
def drift(model, task, examples, block: int, steps: int) -> list[float]:
    """Per layer: relative change of the cached prefix's keys and values over a block (see above)."""
    prompts, filled = tiny_batch(task, examples, model.tokenizer)
    gen = task.tiny_gen_length
    traj = generate(model, prompts, DecodeConfig(gen_length=gen, steps=steps, block_length=block), responses=filled)
    spb, p = steps // (gen // block), traj.prompt_length
    per_layer = None
    blocks = range(1, gen // block)
    for b in blocks:
        _, start = model.logits_and_cache(traj.state(b * spb), traj.attention_mask)
        _, end = model.logits_and_cache(traj.state((b + 1) * spb - 1), traj.attention_mask)
        hi = p + b * block
        change = [float((torch.cat([k1, v1]) - torch.cat([k0, v0]))[:, :, :hi].norm()
                        / torch.cat([k0, v0])[:, :, :hi].norm())
                  for k0, v0, k1, v1 in zip(start.keys, start.values, end.keys, end.values)]
        per_layer = change if per_layer is None else [a + c for a, c in zip(per_layer, change)]
    return [round(c / len(blocks), 3) for c in per_layer]


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
    drifts = []
    for name, task_name, block, steps in [("sudoku-tiny", "sudoku", 4, 16), ("countdown-tiny", "countdown", 5, 20)]:
        task = get_task(task_name)
        drifts.append({"model": name, "block": block, "steps": steps,
                       "drift": drift(models[name], task, problems[task_name][:DRIFT_N], block, steps)})
        print(drifts[-1], flush=True)
    worst = max(abs(r["delta"]) for r in rows)
    lines = ["| model | block | schedule | cache | solved % | vs none | same tokens % | forwards / problem |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['block']} | {r['schedule']} | {r['cache']} | {r['solved']:.1f} | "
              f"{r['delta']:+.1f} | {r['same_tokens']:.1f} | {r['forwards']:.2f} |" for r in rows]
    hw = hardware()
    lines += ["", f"{N} test problems per task (generated, seed {DATA_SEED}), temperature 0, low-confidence "
              f"remasking; largest |difference from none|: {worst:.1f} points (floor: 1). {hw['processor']}, "
              f"one thread, torch {hw['torch']}; {now()}.", "",
              "| model | block | steps | drift of the cached keys/values over a block, layer 1 .. last |",
              "|---|---|---|---|"]
    lines += [f"| {d['model']} | {d['block']} | {d['steps']} | {' / '.join(f'{x:.3f}' for x in d['drift'])} |"
              for d in drifts]
    save_report(RESULTS, "cache_accuracy", lines, {"n": N, "data_seed": DATA_SEED, "threshold": THRESHOLD,
                                                   "rows": rows, "largest_difference": worst, "drift": drifts})


if __name__ == "__main__":
    main()
