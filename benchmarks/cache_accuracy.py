"""Accuracy with the KV cache (``--cache prefix | dual``, docs/method.md section 2) against the
uncached sampler, on the shipped tiny models with blocks shorter than the response.

Sudoku (``sudoku-tiny``, 16 response positions, the givens pre-filled) at blocks 4 and 8 and
Countdown (``countdown-tiny``, 20 positions) at blocks 5 and 10, at fixed schedules (several
steps per block: with one step per block every step refills the cache and the modes are equal by
construction) and at confidence threshold 0.9 (Fast-dLLM's combination); temperature 0, the 500
test problems ``mro eval`` uses by default (generated with seed 1234). Reported: solved % per
mode, its difference from ``none`` (the floor: within 1 point), the share of committed tokens
equal to ``none``'s, and forwards per problem. Each cached mode runs with ``cache_refresh`` 0
(refill at block boundaries only, Fast-dLLM's rule), 2 and 1 (a full forward that refills the
cache every 2 steps / every step inside a block; 1 equals ``none`` by construction, a check);
``full fwd`` is the share of the forwards that are full ones (the rest are windows).

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
#: (cache, cache_refresh) per run of a setting
RUNS = [("none", 0), ("prefix", 0), ("dual", 0), ("prefix", 2), ("dual", 2), ("prefix", 1), ("dual", 1)]
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


class _FullForwards:
    """Counts the batch's full forwards (``logits``, ``logits_and_cache``) and windowed ones."""

    def __init__(self, model):
        self.inner, self.full, self.window = model, 0, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def logits(self, x, attention_mask=None):
        self.full += 1
        return self.inner.logits(x, attention_mask)

    def logits_and_cache(self, x, attention_mask=None):
        self.full += 1
        return self.inner.logits_and_cache(x, attention_mask)

    def window_logits(self, *args, **kw):
        self.window += 1
        return self.inner.window_logits(*args, **kw)


def decode(model, task, examples, block: int, steps: int | None, mode: str, refresh: int = 0):
    """Solved flags, responses, forwards per problem and the share of full forwards of one setting."""
    gen = task.tiny_gen_length
    cfg = DecodeConfig(gen_length=gen, steps=steps or gen, block_length=block, cache=mode,
                       cache_refresh=refresh, threshold=None if steps else THRESHOLD)
    solved, responses, forwards = [], [], 0
    counted = _FullForwards(model)
    for i in range(0, len(examples), BATCH):
        batch = examples[i:i + BATCH]
        prompts, filled = tiny_batch(task, batch, model.tokenizer)
        result = get_decoder("vanilla")(counted, prompts, filled, cfg)
        traj = result.trajectory
        forwards += sum(result.nfe)
        texts = state_texts(model, traj, traj.steps_done)
        solved += [task.score(ex, t)[task.metrics[0]] for ex, t in zip(batch, texts)]
        responses.append(traj.response)
    share = counted.full / (counted.full + counted.window)
    return torch.tensor(solved), torch.cat(responses), forwards / len(examples), share


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
        runs = {run: decode(model, task, examples, block, steps, *run) for run in RUNS}
        base_solved, base_resp, _, _ = runs[("none", 0)]
        for (mode, refresh), (solved, resp, fwd, share) in runs.items():
            rows.append({"model": name, "task": task_name, "block": block,
                         "schedule": f"{steps} steps" if steps else f"threshold {THRESHOLD}", "cache": mode,
                         "refresh": refresh, "full_share": round(100 * share, 1),
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
    worst_by = {r: max(abs(row["delta"]) for row in rows if row["refresh"] == r) for r in (0, 2, 1)}
    lines = ["| model | block | schedule | cache | refresh | solved % | vs none | same tokens % | forwards / problem "
             "| full fwd % |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['block']} | {r['schedule']} | {r['cache']} | {r['refresh']} | {r['solved']:.1f} | "
              f"{r['delta']:+.1f} | {r['same_tokens']:.1f} | {r['forwards']:.2f} | {r['full_share']:.0f} |"
              for r in rows]
    hw = hardware()
    lines += ["", f"{N} test problems per task (generated, seed {DATA_SEED}), temperature 0, low-confidence "
              f"remasking; largest |difference from none|: {worst_by[0]:.1f} points at refresh 0, "
              f"{worst_by[2]:.1f} at refresh 2, {worst_by[1]:.1f} at refresh 1 (floor: 1). {hw['processor']}, "
              f"one thread, torch {hw['torch']}; {now()}.", "",
              "| model | block | steps | drift of the cached keys/values over a block, layer 1 .. last |",
              "|---|---|---|---|"]
    lines += [f"| {d['model']} | {d['block']} | {d['steps']} | {' / '.join(f'{x:.3f}' for x in d['drift'])} |"
              for d in drifts]
    save_report(RESULTS, "cache_accuracy", lines, {"n": N, "data_seed": DATA_SEED, "threshold": THRESHOLD,
                                                   "rows": rows, "largest_difference": worst,
                                                   "largest_difference_by_refresh": worst_by, "drift": drifts})


if __name__ == "__main__":
    main()
