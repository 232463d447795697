"""Why the KV cache costs the tiny models accuracy, and whether training under the cache removes it
(``--cache prefix | dual``, docs/method.md section 2).

Three measurements on ``countdown-tiny`` (20 response positions, prompt ``<bos>a,b,c>t:``) and
``sudoku-tiny``, greedy, low-confidence remasking, the 500 test problems of
``cache_accuracy.py`` (generated with seed 1234):

1. **Which cached positions cost it.** A restatement of the sampler's fixed schedule whose every
   step runs a full forward in which only a chosen part of the sequence reads its keys and values,
   at every layer, from the forward that opened the block: the prompt, the finished blocks, the
   masked suffix, or a union. Nothing stale equals ``--cache none``, prompt + finished blocks
   equals ``--cache prefix`` and all three ``--cache dual`` (checked against the sampler, token for
   token, and written in the table): so each part's share of the loss is measured, not guessed.
2. **Training under the cache** (``--finetune``): ``countdown-tiny`` trained further with, per batch,
   LLaDA's loss plus the same loss on one block read through a stale cache (``prefix`` and
   ``dual``: the cache filled with the block and everything after it masked, the block then
   partly unmasked at a random ratio, the cached forward's logits scored on its masked
   positions; block lengths 2, 4, 5 and 10, one drawn per batch). AdamW at ``LR`` after a
   30-step warm-up, batch 128 of fresh training problems, seed 5; checkpoints every 200 steps
   (a rerun resumes from the last; every step's draws are a function of
   the step, so a resumed run equals an unbroken one). Each checkpoint is decoded with ``none``, ``prefix`` and
   ``dual`` at the settings of ``cache_accuracy.py``.
3. **Distillation** (``--distill --lr``): the cached forward (``prefix`` or ``dual``) and the uncached
   one pulled by KL, on the block's masked positions, to the frozen model's uncached logits, on the
   states the student's own cached greedy decode of fresh training problems visits; the same
   checkpoints and decodes as part 2.

The restatement reads the tiny model's layers directly: this is a measurement
of the shipped tiny models, not library code.

    python benchmarks/cache_staleness.py              # -> results/cache/cache_staleness.{md,json}
    python benchmarks/cache_staleness.py --finetune   # -> results/cache/cache_finetune.{md,json}
    python benchmarks/cache_staleness.py --distill --lr 1e-4   # -> results/cache/cache_distill_lr0.0001.{md,json}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from cache_accuracy import DATA_SEED, N, decode  # noqa: E402

from mro.eval.records import hardware, now, save_report  # noqa: E402
from mro.models import load_model  # noqa: E402
from mro.models.tiny import TinyDLM  # noqa: E402
from mro.sampling import DecodeConfig, generate  # noqa: E402
from mro.sampling.sampler import start  # noqa: E402
from mro.sampling.schedule import tokens_this_step  # noqa: E402
from mro.tasks import get_task  # noqa: E402
from mro.tasks.base import tiny_batch  # noqa: E402
from mro.train.loss import masked_diffusion_rows  # noqa: E402
from mro.train.sft import SFTConfig, make_batch  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "cache"
BATCH = 250
STALE = [(), ("prompt",), ("finished",), ("suffix",), ("prompt", "finished"), ("prompt", "finished", "suffix")]
#: (model, task, block, steps)
SETTINGS = [("countdown-tiny", "countdown", 5, 20), ("countdown-tiny", "countdown", 10, 10),
            ("sudoku-tiny", "sudoku", 4, 8), ("sudoku-tiny", "sudoku", 8, 4)]
#: fine-tuning: model, task options of its training data, steps, learning rate, checkpoint interval
FT_MODEL, FT_OPTIONS = "countdown-tiny", "n_numbers=3,max_number=100,max_target=100,layout=chain"
FT_STEPS, LR, WARMUP, FT_BATCH, FT_SEED, EVERY = 1000, 5e-5, 30, 128, 5, 200
FT_BLOCKS = (2, 4, 5, 10)
#: distillation (part 3): learning rate, updates, the (block, steps) of its rollouts (cycled)
DISTILL_LR, DISTILL_STEPS = 1e-4, 400
DISTILL_DECODES = [(5, 20), (10, 20), (5, 8), (10, 10)]
#: (block, steps or None for threshold 0.9) decoded at every checkpoint
FT_SETTINGS = [(5, 20), (5, 8), (10, 20), (10, 10), (5, None), (10, None)]


def _mixed_logits(model: TinyDLM, ids, attn, stale_kv, stale: torch.Tensor):
    """Full-forward logits where positions ``stale`` ([L] bool) read their keys and values from ``stale_kv``."""
    t = model.module
    n = ids.shape[1]
    rot, mask = t.rope[:n], t._padding_mask(attn)
    x = t.embed(ids)
    for i, blk in enumerate(t.blocks):
        b, _, d = x.shape
        q, k, v = blk._qkv(x, rot)
        k = torch.where(stale[None, None, :, None], stale_kv[i][0], k)
        v = torch.where(stale[None, None, :, None], stale_kv[i][1], v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + blk.proj(y.transpose(1, 2).reshape(b, n, d))
        x = x + blk.ff(blk.ln2(x))
    return t.head(t.ln_f(x))


@torch.no_grad()
def stale_decode(model: TinyDLM, task, examples, block: int, steps: int, parts: tuple[str, ...]):
    """Solved flags and responses of the fixed schedule with ``parts`` read from the block's first forward."""
    gen = task.tiny_gen_length
    spb = steps // (gen // block)
    solved, responses = [], []
    for i in range(0, len(examples), BATCH):
        batch = examples[i:i + BATCH]
        prompts, filled = tiny_batch(task, batch, model.tokenizer)
        traj = start(model, prompts, filled, gen_length=gen)
        x, attn, p = traj.tokens.clone(), traj.attention_mask, traj.prompt_length
        pos = torch.arange(x.shape[1])
        for s in range(steps):
            lo = p + (s // spb) * block
            hi = lo + block
            if s % spb == 0:
                kv = []
                model.module(x, attn, kv_out=kv)
            stale = torch.zeros_like(pos, dtype=torch.bool)
            if "prompt" in parts:
                stale |= pos < p
            if "finished" in parts:
                stale |= (pos >= p) & (pos < lo)
            if "suffix" in parts:
                stale |= pos >= hi
            logits = _mixed_logits(model, x, attn, kv, stale)[:, lo:hi]
            logits[..., model.mask_token_id] = float("-inf")
            x0 = logits.argmax(-1)
            conf = torch.softmax(logits, -1).gather(-1, x0[..., None]).squeeze(-1)
            masked = x[:, lo:hi] == model.mask_token_id
            conf = conf.masked_fill(~masked, float("-inf"))
            n = tokens_this_step(masked.sum(-1), spb - s % spb)
            if int(n.max()):
                top = conf.topk(int(n.max()), -1).indices
                commit = torch.zeros_like(masked)
                commit.scatter_(1, top, torch.arange(top.shape[1])[None] < n[:, None])
                x[:, lo:hi] = torch.where(commit, x0, x[:, lo:hi])
        texts = [model.tokenizer.decode(r.tolist()) for r in x[:, p:]]
        solved += [task.score(ex, t)[task.metrics[0]] for ex, t in zip(batch, texts)]
        responses.append(x[:, p:])
    return torch.tensor(solved), torch.cat(responses)


def staleness() -> None:
    torch.set_num_threads(1)
    rows = []
    for name, task_name, block, steps in SETTINGS:
        model, task = load_model(name), get_task(task_name)
        examples = task.generate(N, seed=DATA_SEED, split="test")
        sampler = {mode: decode(model, task, examples, block, steps, mode)[1] for mode in ("none", "prefix", "dual")}
        base = None
        for parts in STALE:
            solved, resp = stale_decode(model, task, examples, block, steps, parts)
            base = solved if base is None else base
            same_as = {(): "none", ("prompt", "finished"): "prefix", ("prompt", "finished", "suffix"): "dual"}.get(parts)
            rows.append({"model": name, "block": block, "steps": steps, "stale": list(parts),
                         "solved": round(100 * float(solved.float().mean()), 1),
                         "delta": round(100 * float((solved.float() - base.float()).mean()), 1),
                         "equals_sampler": None if same_as is None else bool((resp == sampler[same_as]).all()),
                         "sampler_mode": same_as})
            print(rows[-1], flush=True)
    lines = ["| model | block | steps | stale keys/values | solved % | vs nothing stale | = the sampler's |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['block']} | {r['steps']} | {' + '.join(r['stale']) or 'nothing'} | "
              f"{r['solved']:.1f} | {r['delta']:+.1f} | "
              f"{'' if r['sampler_mode'] is None else ('--cache ' + r['sampler_mode'] + (': yes' if r['equals_sampler'] else ': NO'))} |"
              for r in rows]
    hw = hardware()
    lines += ["", f"{N} test problems per task (seed {DATA_SEED}), greedy, low-confidence remasking, fixed schedule; "
              "'stale': the parts whose keys and values come, at every layer, from the forward that opened the "
              "block (finished = earlier blocks of the response, suffix = the masked blocks after it). "
              f"{hw['processor']}, one thread, torch {hw['torch']}; {now()}."]
    save_report(RESULTS, "cache_staleness", lines, {"n": N, "data_seed": DATA_SEED, "rows": rows})


def cached_block_loss(model: TinyDLM, tokens, maskable, attn, prompt_length: int, mode: str,
                      gen: torch.Generator) -> torch.Tensor:
    """LLaDA's loss on one block read through a stale cache (see the module docstring)."""
    b, length = tokens.shape
    g = length - prompt_length
    blocks = [bl for bl in FT_BLOCKS if g % bl == 0 and bl < g]
    bl = blocks[int(torch.randint(len(blocks), (1,), generator=gen))]
    j = int(torch.randint(g // bl, (1,), generator=gen))
    lo, hi = prompt_length + j * bl, prompt_length + (j + 1) * bl
    pos = torch.arange(length)
    opened = tokens.masked_fill(maskable & (pos >= lo)[None], model.mask_token_id)
    t = torch.rand(b, 1, generator=gen).clamp_min(1e-3)
    in_block = ((pos >= lo) & (pos < hi))[None] & maskable
    noise = in_block & (torch.rand(b, length, generator=gen) < t)
    state = torch.where(in_block, tokens.masked_fill(noise, model.mask_token_id), opened)
    _, cache = model.logits_and_cache(opened, attn)
    logits = model.window_logits(state, attn, cache, lo, length if mode == "prefix" else hi, logits_end=hi)
    hit = noise[:, lo:hi]
    if not bool(hit.any()):
        return logits.sum() * 0
    ce = F.cross_entropy(logits[hit].float(), tokens[:, lo:hi][hit], reduction="none")
    return (ce / t.expand(b, bl)[hit]).sum() / in_block[:, lo:hi].sum().clamp_min(1)


def _evaluate(model, task, examples) -> list[dict]:
    rows = []
    for block, steps in FT_SETTINGS:
        res = {mode: decode(model, task, examples, block, steps, mode)[0] for mode in ("none", "prefix", "dual")}
        base = float(res["none"].float().mean())
        rows.append({"block": block, "schedule": f"{steps} steps" if steps else "threshold 0.9",
                     **{m: round(100 * float(s.float().mean()), 1) for m, s in res.items()},
                     **{f"{m}_delta": round(100 * (float(res[m].float().mean()) - base), 1) for m in ("prefix", "dual")}})
    return rows


def _open_run(runs: Path, task, examples, lr: float, weight_decay: float):
    """An arm's record of evaluations (step 0: the shipped model), its last checkpoint's model and optimizer."""
    runs.mkdir(parents=True, exist_ok=True)
    record = runs / "evals.json"
    evals = json.loads(record.read_text()) if record.is_file() else {}
    if "0" not in evals:
        evals["0"] = _evaluate(load_model(FT_MODEL), task, examples)
        record.write_text(json.dumps(evals, indent=1))
    done = max(int(k) for k in evals)
    model = load_model(str(runs / f"step-{done}")) if done else load_model(FT_MODEL)
    opt = torch.optim.AdamW(model.module.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))
    if done:
        opt.load_state_dict(torch.load(runs / f"step-{done}" / "optimizer.pt"))
    return record, evals, done, model, opt


def _optimise(opt, model: TinyDLM, loss: torch.Tensor, lr: float, step: int) -> None:
    """One AdamW step after the linear warm-up's rate, gradients clipped at 1."""
    for group in opt.param_groups:
        group["lr"] = lr * min(1.0, (step + 1) / WARMUP)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.module.parameters(), 1.0)
    opt.step()


def _checkpoint(model: TinyDLM, opt, runs: Path, done: int, task, examples, evals: dict, record: Path) -> None:
    """Save the model and optimizer after ``done`` steps and decode the test problems with it."""
    model.module.eval()
    folder = runs / f"step-{done}"
    model.save(folder)
    torch.save(opt.state_dict(), folder / "optimizer.pt")
    evals[str(done)] = _evaluate(model, task, examples)
    record.write_text(json.dumps(evals, indent=1))
    print(done, evals[str(done)], flush=True)
    model.module.train()


def finetune() -> None:
    torch.set_num_threads(1)
    task = get_task("countdown")
    examples = task.generate(N, seed=DATA_SEED, split="test")
    runs = RESULTS / "finetune"
    record, evals, done, model, opt = _open_run(runs, task, examples, LR, weight_decay=0.01)
    cfg = SFTConfig(task="countdown", batch_size=FT_BATCH, seed=FT_SEED, task_options=FT_OPTIONS, out=str(runs))
    log = (runs / "log.jsonl").open("a")
    model.module.train()
    t0 = time.process_time()
    for step in range(done, FT_STEPS):
        tokens, maskable, attn = make_batch(task, model.tokenizer, cfg, step)
        p = tokens.shape[1] - task.tiny_gen_length
        gen = torch.Generator().manual_seed(FT_SEED * 1_000_003 + step)  # a pure function of the step: resumes exactly
        base = masked_diffusion_rows(model, tokens, maskable, attn, generator=torch.Generator().manual_seed(step)).mean()
        prefix = cached_block_loss(model, tokens, maskable, attn, p, "prefix", gen)
        dual = cached_block_loss(model, tokens, maskable, attn, p, "dual", gen)
        _optimise(opt, model, base + prefix + dual, LR, step)
        if step % 20 == 0:
            log.write(json.dumps({"step": step, "loss": round(float(base.detach()), 4),
                                  "prefix_loss": round(float(prefix.detach()), 4),
                                  "dual_loss": round(float(dual.detach()), 4),
                                  "cpu_s": round(time.process_time() - t0, 1)}) + "\n")
            log.flush()
        if (step + 1) % EVERY == 0:
            _checkpoint(model, opt, runs, step + 1, task, examples, evals, record)
    report_finetune(evals)


def distill(lr: float = DISTILL_LR) -> None:
    """Part 3: the cached forward taught to match the uncached one on the states its own cached decode visits."""
    torch.set_num_threads(1)
    task = get_task("countdown")
    examples = task.generate(N, seed=DATA_SEED, split="test")
    runs = RESULTS / f"distill-lr{lr:g}"
    record, evals, done, student, opt = _open_run(runs, task, examples, lr, weight_decay=0.0)
    teacher = load_model(FT_MODEL)
    cfg = SFTConfig(task="countdown", batch_size=FT_BATCH, seed=FT_SEED, task_options=FT_OPTIONS, out=str(runs))
    gen_length, mask = task.tiny_gen_length, student.mask_token_id
    log = (runs / "log.jsonl").open("a")
    t0 = time.process_time()
    for step in range(done, DISTILL_STEPS):
        gen = torch.Generator().manual_seed(FT_SEED * 1_000_003 + step)
        block, steps = DISTILL_DECODES[step % len(DISTILL_DECODES)]
        mode = ("prefix", "dual")[(step // len(DISTILL_DECODES)) % 2]
        prompts, filled = tiny_batch(task, cfg.examples(task, step), student.tokenizer)
        student.module.eval()
        traj = generate(student, prompts, DecodeConfig(gen_length=gen_length, steps=steps, block_length=block,
                                                       cache=mode), responses=filled)
        spb, p = steps // (gen_length // block), traj.prompt_length
        j = int(torch.randint(gen_length // block, (1,), generator=gen))
        r = 1 + int(torch.randint(spb - 1, (1,), generator=gen))
        opened, state, attn = traj.state(j * spb), traj.state(j * spb + r), traj.attention_mask
        lo, hi = p + j * block, p + (j + 1) * block
        with torch.no_grad():
            target = torch.log_softmax(teacher.logits(state, attn)[:, lo:hi].float(), -1)
        student.module.train()
        _, cache = student.logits_and_cache(opened, attn)
        cached = student.window_logits(state, attn, cache, lo, state.shape[1] if mode == "prefix" else hi,
                                       logits_end=hi)
        full = student.logits(state, attn)[:, lo:hi]
        masked = state[:, lo:hi] == mask

        def kl(logits):
            return F.kl_div(torch.log_softmax(logits.float(), -1)[masked], target[masked], log_target=True,
                            reduction="batchmean")

        k_cached, k_full = kl(cached), kl(full)
        _optimise(opt, student, k_cached + k_full, lr, step)
        if step % 20 == 0:
            log.write(json.dumps({"step": step, "mode": mode, "block": block, "steps": steps,
                                  "kl_cached": round(float(k_cached.detach()), 5),
                                  "kl_full": round(float(k_full.detach()), 5),
                                  "cpu_s": round(time.process_time() - t0, 1)}) + "\n")
            log.flush()
        if (step + 1) % EVERY == 0:
            _checkpoint(student, opt, runs, step + 1, task, examples, evals, record)
    report_finetune(evals, f"cache_distill_lr{lr:g}", distill_how(lr), DISTILL_STEPS, lr)


def distill_how(lr: float) -> str:
    return ("distilled: the cached forward (prefix or dual, alternating every "
            f"{len(DISTILL_DECODES)} updates) and the uncached one both pulled, by KL on the block's masked "
            f"positions, to the frozen {FT_MODEL}'s uncached logits, on states of the student's own cached "
            f"greedy decode of {FT_BATCH} fresh training problems per update (block, steps cycling over "
            f"{DISTILL_DECODES}; one window step drawn per update); AdamW lr {lr:g}")


def report_finetune(evals: dict, name: str = "cache_finetune", how: str = "", planned: int = FT_STEPS,
                    lr: float = LR) -> None:
    lines = ["| fine-tuning steps | block | schedule | none | prefix | vs none | dual | vs none |",
             "|---|---|---|---|---|---|---|---|"]
    for step in sorted(evals, key=int):
        lines += [f"| {step} | {r['block']} | {r['schedule']} | {r['none']:.1f} | {r['prefix']:.1f} | "
                  f"{r['prefix_delta']:+.1f} | {r['dual']:.1f} | {r['dual_delta']:+.1f} |" for r in evals[step]]
    hw = hardware()
    how = how or (f"fine-tuned with LLaDA's loss + the cached-block loss (prefix and dual), block lengths "
                  f"{FT_BLOCKS}, AdamW lr {LR}")
    lines += ["", f"{FT_MODEL} {how}, after {WARMUP} warm-up steps, batch {FT_BATCH}, seed {FT_SEED}; each row "
              f"decodes the {N} test problems (seed {DATA_SEED}) greedily with refresh 0; run to step "
              f"{max(int(k) for k in evals)} of {planned} (rerunning the arm continues it). {hw['processor']}, one "
              f"thread, torch {hw['torch']}; {now()}."]
    save_report(RESULTS, name, lines, {"how": how, "lr": lr, "warmup": WARMUP, "batch": FT_BATCH, "seed": FT_SEED,
                                       "evals": evals})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--finetune", action="store_true", help="train countdown-tiny under the cache (part 2)")
    ap.add_argument("--distill", action="store_true", help="teach the cached forward the uncached one's logits (part 3)")
    ap.add_argument("--lr", type=float, default=DISTILL_LR, help="--distill: learning rate")
    ap.add_argument("--report-only", action="store_true", help="rebuild the fine-tuning table from evals.json")
    args = ap.parse_args()
    if args.report_only:
        report_finetune(json.loads((RESULTS / "finetune" / "evals.json").read_text()))
        for folder in sorted(RESULTS.glob("distill-lr*")):
            lr = float(folder.name[len("distill-lr"):])
            report_finetune(json.loads((folder / "evals.json").read_text()), f"cache_distill_lr{lr:g}",
                            distill_how(lr), DISTILL_STEPS, lr)
    elif args.distill:
        distill(args.lr)
    elif args.finetune:
        finetune()
    else:
        staleness()
