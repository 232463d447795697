"""Sampler overhead vs the model's forward passes.

Decodes a batch of held-out Sudoku puzzles with the shipped tiny model, then times the same
number of bare forward passes on the very states the decode went through, and the same decode
with the forward replaced by a copy of precomputed logits (the sampler's own work). Overhead =
sampler-alone time / forward time (medians over repeats); the end-to-end ratio (decode / forwards
- 1, median of back-to-back pairs) is reported too. All measured in this one run.

    python benchmarks/sampler_overhead.py            # writes benchmarks/results/sampler_overhead.json
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from mro.eval.records import hardware, now
from mro.sampling import DecodeConfig, generate

from common.timing import sudoku_batch

BATCH, REPEATS = 64, 40
OUT = Path(__file__).parent / "results" / "sampler_overhead.json"


def main() -> dict:
    model, _, prompts, responses = sudoku_batch(BATCH, seed=99, split="test", min_blanks=10, max_blanks=12)
    rows = {}
    for temperature in (0.0, 0.25):
        cfg = DecodeConfig(gen_length=16, steps=12, temperature=temperature)
        traj = generate(model, prompts, cfg, responses=responses, generator=torch.Generator().manual_seed(0))
        states = [traj.state(t) for t in range(traj.steps_done)]
        with torch.no_grad():
            canned = model.logits(states[0], traj.attention_mask)
        dec, fwd, own = [], [], []
        for r in range(REPEATS):
            t0 = time.perf_counter()
            generate(model, prompts, cfg, responses=responses, generator=torch.Generator().manual_seed(r))
            dec.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with torch.no_grad():
                for s in states:
                    model.logits(s, traj.attention_mask)
            fwd.append(time.perf_counter() - t0)
            # the sampler alone: the same decode with the forward replaced by a copy of canned logits
            model.logits = lambda x, a=None: canned.clone()
            t0 = time.perf_counter()
            generate(model, prompts, cfg, responses=responses, generator=torch.Generator().manual_seed(r))
            own.append(time.perf_counter() - t0)
            del model.logits
        d, f, o = statistics.median(dec), statistics.median(fwd), statistics.median(own)
        # each repeat times both back to back; the median of the paired ratios resists drift
        paired = statistics.median(a / b for a, b in zip(dec, fwd))
        rows[f"temperature={temperature}"] = {"decode_s": d, "forward_s": f, "sampler_only_s": o,
                                              "overhead": o / f, "end_to_end_overhead": paired - 1}
    result = {"what": "sampler's own time (forward replaced by canned logits) / bare forward time, and "
                      "end-to-end decode time / bare forward time - 1; batch 64, 12 steps, shipped sudoku-tiny",
              "batch": BATCH, "repeats": REPEATS, "results": rows, "hardware": hardware(), "date": now()}
    OUT.write_text(json.dumps(result, indent=2))
    for k, v in rows.items():
        print(f"{k}: forwards {v['forward_s'] * 1e3:.1f} ms, sampler alone {v['sampler_only_s'] * 1e3:.1f} ms "
              f"= {100 * v['overhead']:.1f}% of them; end to end decode {v['decode_s'] * 1e3:.1f} ms "
              f"(+{100 * v['end_to_end_overhead']:.1f}%, includes cache effects and noise)")
    return result


if __name__ == "__main__":
    main()
