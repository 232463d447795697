"""Sampler overhead vs the model's forward passes (issue 2).

Decodes a batch of held-out Sudoku puzzles with the shipped tiny model, then times the same
number of bare forward passes on the very states the decode went through. Overhead =
decode time / forward time - 1, median over repeats, both measured in this one run.

    python benchmarks/sampler_overhead.py            # writes benchmarks/results/sampler_overhead.json
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from mro.eval.records import hardware, now
from mro.models import load_model
from mro.sampling import DecodeConfig, generate
from mro.tasks import get_task
from mro.tasks.base import tiny_batch

BATCH, REPEATS = 64, 30
OUT = Path(__file__).parent / "results" / "sampler_overhead.json"


def main() -> dict:
    torch.set_num_threads(1)  # steadier timings; the ratio is what counts
    model = load_model("sudoku-tiny")
    task = get_task("sudoku")
    examples = task.generate(BATCH, seed=99, split="test", min_blanks=10, max_blanks=12)
    prompts, responses = tiny_batch(task, examples, model.tokenizer)
    rows = {}
    for temperature in (0.0, 0.25):
        cfg = DecodeConfig(gen_length=16, steps=12, temperature=temperature)
        traj = generate(model, prompts, cfg, responses=responses, generator=torch.Generator().manual_seed(0))
        states = [traj.state(t) for t in range(traj.steps_done)]
        dec, fwd = [], []
        for r in range(REPEATS):
            t0 = time.perf_counter()
            generate(model, prompts, cfg, responses=responses, generator=torch.Generator().manual_seed(r))
            dec.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with torch.no_grad():
                for s in states:
                    model.logits(s, traj.attention_mask)
            fwd.append(time.perf_counter() - t0)
        d, f = statistics.median(dec), statistics.median(fwd)
        rows[f"temperature={temperature}"] = {"decode_s": d, "forward_s": f, "overhead": d / f - 1}
    result = {"what": "sampler time / bare forward time - 1, batch 64, 12 steps, shipped sudoku-tiny",
              "batch": BATCH, "repeats": REPEATS, "results": rows, "hardware": hardware(), "date": now()}
    OUT.write_text(json.dumps(result, indent=2))
    for k, v in rows.items():
        print(f"{k}: decode {v['decode_s'] * 1e3:.2f} ms, forwards {v['forward_s'] * 1e3:.2f} ms, "
              f"overhead {100 * v['overhead']:.1f}%")
    return result


if __name__ == "__main__":
    main()
