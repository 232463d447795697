"""Cost of the intra rewards relative to decoding.

On the shipped tiny Sudoku model: decode a batch of held-out puzzles at one token per step
(12 steps for 12 blanks), then compute ``R_tv`` (1 verified token per group) and ``R_ppl``
(shipped tiny causal scorer) for the whole trajectory, per SGRO group of ``w`` steps. Reported:
reward time / decoding time, median over repeats, measured in this one run. Target: <= 0.5x at w = 4.

    python benchmarks/reward_cost.py      # -> benchmarks/results/reward_cost.{json,md}
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from mro.eval.records import hardware, save_report
from mro.rewards.multi import MultiReward, RewardConfig
from mro.rewards.sgro import group_bounds
from mro.sampling import DecodeConfig, generate

from common.timing import sudoku_batch

BATCH, REPEATS, STEPS = 128, 7, 12
RESULTS = Path(__file__).parent / "results"


def main() -> dict:
    model, task, prompts, responses = sudoku_batch(BATCH, seed=7, min_blanks=12, max_blanks=12)
    cfg = DecodeConfig(gen_length=16, steps=STEPS, temperature=0.25)
    reward = MultiReward(model, task, RewardConfig(rewards="tv,ppl"))
    rows = {}
    for w in (1, 2, 4, 12):
        dec, rew = [], []
        for r in range(REPEATS):
            gen = torch.Generator().manual_seed(r)
            t0 = time.perf_counter()
            traj = generate(model, prompts, cfg, responses=responses, generator=gen)
            dec.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            reward.intra(traj, group_bounds(STEPS, w), generator=gen)
            rew.append(time.perf_counter() - t0)
        d, q = statistics.median(dec), statistics.median(rew)
        rows[w] = {"groups": len(group_bounds(STEPS, w)), "decode_s": d, "rewards_s": q, "ratio": q / d}
    lines = ["| SGRO group w | groups | rewards / decoding time |", "|---|---|---|"]
    lines += [f"| {w} | {v['groups']} | {v['ratio']:.2f}x |" for w, v in rows.items()]
    hw = hardware()
    lines += ["", f"R_tv (1 token per group) + R_ppl (sudoku-ar-tiny) vs decoding sudoku-tiny, batch {BATCH}, "
              f"{STEPS} steps, temperature 0.25, median of {REPEATS}; {hw['processor']}, 1 thread, torch {hw['torch']}"]
    save_report(RESULTS, "reward_cost", lines, {"results": rows})
    return rows


if __name__ == "__main__":
    main()
