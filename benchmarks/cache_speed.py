"""Decoding speed with the KV cache (``--cache none | prefix | dual``, docs/method.md section 2) on
randomly initialised native LLaDA and Dream models, as ratios measured in one run.

Shapes: LLaDA-8B's and Dream-7B's configs (``mro.models.llada.LLADA_8B_CONFIG``,
``mro.models.dream.DREAM_7B_CONFIG``: their vocabularies of 126,464 and 152,064, rotary settings,
GQA ratio) with fewer and narrower layers (``SCALED`` below), or the real shapes (``--shape full``,
for a GPU). Workload: prompts of 256 random tokens + 256 response positions, block 32, 128 steps
(16 per block), temperature 0, batch 1 and 8. Random weights: the timings are real, the tokens are
not answers.

Each mode decodes the same batch from the same state; tokens/s = committed response tokens
(batch x positions) / seconds. On a CPU a full decode of the uncached mode takes minutes, so
``--blocks N`` times the first N of the 8 blocks (``denoise(num_steps=16 N)``): ``none`` and
``dual`` cost the same in every block, while ``prefix``'s window shrinks block by block, so its
rate over the first blocks is a lower bound of its full-decode rate. The reference row times a
restatement of LLaDA's ``generate.py`` loop (tests/sampling/test_reference.py) for the same number
of forwards (at batch 1 by default: its softmax over every position and the whole vocabulary makes
it the slowest); on a short problem the sampler with ``cache none`` commits exactly its tokens.

The LM head: with the real vocabulary and narrow layers most of a full forward is the head
(``head share`` column, counted in multiply-adds), and a cached step computes the head for the
block only, so the scaled ratios overstate what the cache gives at the real shape (head share
about 7%); the real-shape timings come from ``benchmarks/gpu_smoke.sh``.

``--refresh 2,4`` adds ``prefix`` and ``dual`` rows with ``cache_refresh`` 2 and 4 (a full
forward refills the cache every r steps inside a block) and saves to ``cache_speed_refresh``.

    python benchmarks/cache_speed.py      # CPU, one thread -> benchmarks/results/cache/cache_speed.{md,json}
    python benchmarks/cache_speed.py --models llada --batch 1 --reference-batch 0 --refresh 2,4
    python benchmarks/cache_speed.py --shape full --device cuda --dtype bf16 --blocks 8 --out DIR
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from mro.eval.records import hardware, now, save_report
from mro.models.dream import DREAM_7B_CONFIG
from mro.models.llada import LLADA_8B_CONFIG
from mro.models.native import random_model
from mro.sampling import DecodeConfig, denoise, start

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sampling"))
from test_reference import NoMaskModel, reference_generate  # noqa: E402  (the reference restatement)

RESULTS = Path(__file__).parent / "results" / "cache"
PROMPT, GEN, BLOCK, STEPS = 256, 256, 32, 128
MODES = ("none", "prefix", "dual")
#: fewer and narrower layers, every other setting (vocabulary, rotary, GQA ratio, head size) as released
SCALED = {
    "llada": {**LLADA_8B_CONFIG, "d_model": 128, "n_layers": 2, "n_heads": 1, "n_kv_heads": 1,
              "mlp_hidden_size": 384},
    "dream": {**DREAM_7B_CONFIG, "hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 1},
}
FULL = {"llada": LLADA_8B_CONFIG, "dream": DREAM_7B_CONFIG}


class _Stop(Exception):
    pass


class _Budget:
    """Stops the reference loop after ``n`` forwards (it has no step limit of its own)."""

    def __init__(self, model, n):
        self.inner, self.left = model, n

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def logits(self, x, attention_mask=None):
        if self.left == 0:
            raise _Stop
        self.left -= 1
        return self.inner.logits(x, attention_mask)


def head_share(config: dict) -> float:
    """Fraction of a full forward's multiply-adds (per position, attention scores aside) in the LM head."""
    c = {**config}
    d = c.get("d_model", c.get("hidden_size"))
    layers = c.get("n_layers", c.get("num_hidden_layers"))
    heads = c.get("n_heads", c.get("num_attention_heads"))
    kv = c.get("n_kv_heads", c.get("num_key_value_heads")) or heads
    mlp = c.get("mlp_hidden_size", c.get("intermediate_size"))
    vocab = c.get("embedding_size", c.get("vocab_size"))
    per_layer = 2 * d * d + 2 * d * (d // heads) * kv + 3 * d * mlp
    return vocab * d / (vocab * d + layers * per_layer)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def build(name: str, shape: str, device: str, dtype: torch.dtype):
    config = (FULL if shape == "full" else SCALED)[name]
    if device.startswith("cuda"):  # initialise on the GPU (an 8B model drawn on a CPU takes minutes)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(device):
                return random_model(config, seed=0, dtype=dtype, device=device), config
        finally:
            torch.set_default_dtype(previous)
    return random_model(config, seed=0, dtype=dtype, device=device), config


def measure(model, batch: int, blocks: int, device: str, reference: bool, refresh=()) -> list[dict]:
    g = torch.Generator().manual_seed(batch)
    prompts = torch.randint(0, model.mask_token_id - 1, (batch, PROMPT), generator=g).tolist()
    traj = start(model, prompts, gen_length=GEN)
    steps = blocks * STEPS // (GEN // BLOCK)
    rows, decoded = [], {}
    for mode, r in [(m, 0) for m in MODES] + [(m, r) for r in refresh for m in MODES[1:]]:
        cfg = DecodeConfig(gen_length=GEN, steps=STEPS, block_length=BLOCK, cache=mode, cache_refresh=r)
        denoise(model, traj, cfg, num_steps=1)  # warm-up (kernels, allocator)
        sync(device)
        t0 = time.perf_counter()
        out = denoise(model, traj, cfg, num_steps=steps)
        sync(device)
        seconds = time.perf_counter() - t0
        decoded[mode if not r else f"{mode}, refresh {r}"] = out
        tokens = int((out.commit_step >= 0).sum())
        rows.append({"mode": mode if not r else f"{mode}, refresh {r}", "batch": batch, "blocks": blocks, "steps": steps, "seconds": round(seconds, 3),
                     "tokens_per_s": round(tokens / seconds, 2)})
    none = rows[0]["tokens_per_s"]
    for r in rows:
        r["speedup_vs_none"] = round(r["tokens_per_s"] / none, 2)
    if not reference:
        return rows
    # the reference loop, stopped after the same number of forwards
    ref_model = NoMaskModel(model)
    x = traj.tokens.clone()
    sync(device)
    t0 = time.perf_counter()
    try:
        reference_generate(_Budget(ref_model, steps), x, PROMPT, traj.attention_mask, STEPS, GEN, BLOCK)
    except _Stop:
        pass
    sync(device)
    seconds = time.perf_counter() - t0
    tokens_per_s = int((decoded["none"].commit_step >= 0).sum()) / seconds
    rows.append({"mode": "reference generate.py", "batch": batch, "blocks": blocks, "steps": steps,
                 "seconds": round(seconds, 3), "tokens_per_s": round(tokens_per_s, 2),
                 "speedup_vs_none": round(tokens_per_s / none, 2)})
    return rows


def reference_agrees(model, device: str) -> bool:
    """On a short problem (prompt 16 + 64, block 32, 16 steps) the sampler with cache none commits
    exactly the reference's tokens (the mask token banned in both, as in tests/sampling/test_reference.py)."""
    ref_model = NoMaskModel(model)
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(0, model.mask_token_id - 1, (2, 16), generator=g).tolist()
    traj = start(ref_model, prompts, gen_length=64)
    ours = denoise(ref_model, traj, DecodeConfig(gen_length=64, steps=16, block_length=32))
    ref = reference_generate(ref_model, traj.tokens.clone(), 16, traj.attention_mask, 16, 64, 32)
    return bool(torch.equal(ours.tokens, ref))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=("scaled", "full"), default="scaled")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--blocks", type=int, default=1, help="blocks timed of the 8 (8: the whole decode)")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--models", default="llada,dream")
    ap.add_argument("--reference-batch", default="1", help="batch sizes that also time the reference loop")
    ap.add_argument("--refresh", default="", help="cache_refresh values that add prefix and dual rows, e.g. 2,4")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    batches = [int(b) for b in args.batch.split(",")]
    rows, agree, shares = [], {}, {}
    with torch.no_grad():
        for name in args.models.split(","):
            model, config = build(name, args.shape, args.device, dtype)
            shares[name] = round(head_share(config), 3)
            # bf16 confidences of a random model tie (all equal in a block), and torch.topk breaks ties
            # differently over the block (sampler) and over the sequence (reference): checked in fp32 only
            agree[name] = reference_agrees(model, args.device) if dtype == torch.float32 else "not checked (bf16 ties)"
            for b in batches:
                for r in measure(model, b, args.blocks, args.device, str(b) in args.reference_batch.split(","),
                                 [int(v) for v in args.refresh.split(",") if v]):
                    rows.append({"model": name, **r})
                    print(rows[-1], flush=True)
            del model
    hw = hardware()
    where = f"{hw['processor']}, {hw['torch_threads']} thread(s)" if args.device == "cpu" else \
        torch.cuda.get_device_name(0)
    lines = ["| model | batch | mode | tokens/s | x none | seconds | steps timed |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['batch']} | {r['mode']} | {r['tokens_per_s']:.1f} | {r['speedup_vs_none']:.2f}x | "
              f"{r['seconds']:.1f} | {r['steps']} |" for r in rows]
    lines += ["", f"Random-weight native models, {args.shape} shape ({args.dtype}): "
              + "; ".join(f"{n}: head share {shares[n]:.0%} of a full forward, sampler (cache none) = reference "
                          f"tokens: {agree[n]}" for n in shares),
              f"prompt {PROMPT} + response {GEN}, block {BLOCK}, {STEPS} steps, temperature 0; first "
              f"{args.blocks} of {GEN // BLOCK} blocks timed after one warm-up step; {where} (a shared machine "
              f"when CPU), torch {hw['torch']}; {now()}.",
              f"Real shapes' head share: llada {head_share(LLADA_8B_CONFIG):.0%}, dream {head_share(DREAM_7B_CONFIG):.0%}."]
    data = {"shape": args.shape, "dtype": args.dtype, "device": where, "prompt": PROMPT, "gen_length": GEN,
            "block_length": BLOCK, "steps": STEPS, "blocks_timed": args.blocks, "head_share": shares,
            "reference_tokens_equal": agree, "configs": {n: (FULL if args.shape == "full" else SCALED)[n] for n in shares},
            "rows": rows}
    stem = "cache_speed" if args.shape == "scaled" else f"cache_speed_{args.shape}_{args.dtype}"
    stem += "_refresh" if args.refresh else ""
    save_report(Path(args.out), stem, lines, data)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
