"""What TTS-MRO adds beyond its k candidates' forward work, on CPU.

On a CPU, k candidates cost about k times the forward work of one decode, so the figure of
merit is TTS-MRO (k = 4) wall time / (4 x vanilla wall time) at the same steps: the rest is the
rewards (leave-one-out verification rows, the PPL scorer), selection and bookkeeping.
Target: <= 1.25. All timed in this one run, back to back per repeat, median of the paired
ratios over repeats, one thread. Run it on an otherwise idle machine.

    python benchmarks/tts_overhead.py     # -> benchmarks/results/tts_overhead.{json,md}
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from mro.eval.records import hardware, now
from mro.rewards.multi import MultiReward
from mro.sampling import DecodeConfig
from mro.search import SearchConfig, get_decoder

from common.timing import sudoku_batch

BATCH, REPEATS, K, TEMP = 128, 15, 4, 0.5
RESULTS = Path(__file__).parent / "results"


def main() -> dict:
    model, task, prompts, responses = sudoku_batch(BATCH, seed=5, min_blanks=10, max_blanks=12)
    rows = []
    for steps in (4, 8):
        cfg = DecodeConfig(gen_length=16, steps=steps, temperature=TEMP)
        for w in (1, 2, 4):
            search = SearchConfig(k=K, w=w)
            reward = MultiReward(model, task, search)
            van, vank, tts = [], [], []
            for r in range(REPEATS):
                t0 = time.perf_counter()
                get_decoder("vanilla")(model, prompts, responses, cfg, generator=torch.Generator().manual_seed(r))
                van.append(time.perf_counter() - t0)
                t0 = time.perf_counter()  # the k candidates' own forward work: k samples of every puzzle, one batch
                get_decoder("vanilla")(model, prompts * K, responses * K, cfg, generator=torch.Generator().manual_seed(r))
                vank.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                get_decoder("tts-mro")(model, prompts, responses, cfg, task=task, search=search, reward=reward,
                                       generator=torch.Generator().manual_seed(r))
                tts.append(time.perf_counter() - t0)
            v, vk, t = statistics.median(van), statistics.median(vank), statistics.median(tts)
            # each repeat times the three back to back; medians of the paired ratios resist drift
            paired = lambda den, scale=1: statistics.median(a / (scale * b) for a, b in zip(tts, den))  # noqa: E731
            rows.append({"steps": steps, "w": w, "vanilla_s": v, "vanilla_kx_batch_s": vk, "tts_mro_s": t,
                         "ratio_vs_vanilla": paired(van), "ratio_vs_k_vanilla": paired(van, K),
                         "ratio_vs_kx_batch": paired(vank)})
    lines = ["| steps | w | TTS-MRO / vanilla | TTS-MRO / (4 x vanilla) | TTS-MRO / vanilla on a 4x batch |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['steps']} | {r['w']} | {r['ratio_vs_vanilla']:.2f}x | {r['ratio_vs_k_vanilla']:.2f} | "
              f"{r['ratio_vs_kx_batch']:.2f} |" for r in rows]
    hw = hardware()
    lines += ["", "4 x vanilla: four vanilla decodes of the batch; vanilla on a 4x batch: one decode of every puzzle four "
              "times (the candidates' own forward work at the batch size TTS runs them)",
              f"sudoku-tiny, batch {BATCH} puzzles (10-12 blanks), k={K}, temperature {TEMP}, rewards tv,ppl,q "
              f"(the search defaults: {SearchConfig().tv_tokens} committed tokens verified, greedy candidate "
              f"{SearchConfig().greedy_candidate}; PPL scorer sudoku-ar-tiny); median of {REPEATS} paired ratios; "
              f"{hw['processor']}, 1 thread, torch {hw['torch']}"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tts_overhead.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "tts_overhead.json").write_text(json.dumps({"results": rows, "hardware": hw, "date": now()}, indent=2))
    print("\n".join(lines))
    return {"results": rows}


if __name__ == "__main__":
    main()
