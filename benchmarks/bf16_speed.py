"""Training-step speed of the tiny DLM with and without ``--bf16`` (bfloat16 autocast), as a ratio
measured in one run, on the Countdown SFT batches (batch 256, chain layout).

For each model size, the same batches are trained fp32, then under autocast, one thread, after
3 warm-up steps each; the ratio is fp32 time / bf16 time (> 1: bf16 is faster). The loss after
the same 30 steps from the same initialisation is reported too (both should be about equal).

    python benchmarks/bf16_speed.py    # -> benchmarks/results/bf16_speed.{json,md}
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from mro.eval.records import hardware, now, save_report
from mro.models.tiny import TinyDLM
from mro.tasks import get_task
from mro.train.loss import masked_diffusion_loss
from mro.train.sft import SFTConfig, make_batch

RESULTS = Path(__file__).parent / "results"
SIZES = [(128, 4), (256, 4)]
WARMUP, TIMED, TRAIN = 3, 10, 30


def run(d: int, layers: int, bf16: bool, batches: list) -> tuple[float, float]:
    """Seconds per step (mean over TIMED steps) and the loss after TRAIN steps."""
    torch.manual_seed(0)
    model = TinyDLM.create(d_model=d, n_layers=layers, n_heads=4, d_ff=4 * d)
    opt = torch.optim.AdamW(model.module.parameters(), lr=1e-3)
    times, loss = [], None
    for step, batch in enumerate(batches):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = masked_diffusion_loss(model, *batch, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if WARMUP <= step < WARMUP + TIMED:
            times.append(time.perf_counter() - t0)
    return sum(times) / len(times), float(loss.detach())


def main() -> None:
    torch.set_num_threads(1)
    task = get_task("countdown")
    cfg = SFTConfig(task="countdown", batch_size=256, task_options="layout=chain")
    tokenizer = TinyDLM.create(d_model=32, n_layers=1, n_heads=2, d_ff=64).tokenizer
    batches = [make_batch(task, tokenizer, cfg, step) for step in range(max(TRAIN, WARMUP + TIMED))]
    rows = []
    for d, layers in SIZES:
        fp32, loss32 = run(d, layers, False, batches)
        bf16, loss16 = run(d, layers, True, batches)
        rows.append({"d_model": d, "n_layers": layers, "ratio": round(fp32 / bf16, 2),
                     "loss_fp32": round(loss32, 4), "loss_bf16": round(loss16, 4)})
    lines = ["| model | fp32 / bf16 step time | loss after 30 steps, fp32 | bf16 |", "|---|---|---|---|"]
    lines += [f"| d={r['d_model']}, {r['n_layers']} layers | {r['ratio']:.2f}x | {r['loss_fp32']} | {r['loss_bf16']} |"
              for r in rows]
    hw = hardware()
    lines += ["", f"Countdown SFT batches (256 problems, chain layout), one thread, {TIMED} timed steps after {WARMUP} "
              f"warm-up; {hw['processor']}, torch {hw['torch']}; {now()}"]
    save_report(RESULTS, "bf16_speed", lines, {"rows": rows})


if __name__ == "__main__":
    main()
