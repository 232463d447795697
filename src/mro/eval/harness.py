"""``mro eval``: a model x task x decoding grid -> per-example JSONL, summary, table, PNG.

Every row and the summary record the model, task, data, protocol, decoding settings, seed and
hardware. Rows are appended batch by batch and flushed, so an interrupted run resumes where it
stopped (same ``--out``) and loses nothing already written. One run at a time per folder (a
lock on ``--out``); a resumed run must have the same settings, batch size and device included
(``eval_config.json``); a corrupt row is reported and dropped alone, then recomputed. Batch ``j`` of a setting always
holds the same examples and draws its noise from ``seed`` and ``j``, so results do not depend
on how a run was split (resumed, or sharded over ``accelerate launch`` processes).

Several processes: ``accelerate launch -m mro eval ...`` (one per GPU); on CPU,
``accelerate launch --multi_gpu --num_processes N -m mro eval --device cpu ...`` (``--cpu`` would
start a single process). Each writes ``examples.rank{r}.jsonl``; rank 0 merges them in the order
one process writes and records ``hardware.processes`` in the summary.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from mro.config import check_fields, to_dict
from mro.config import parse_options  # noqa: F401  (re-exported: mro.eval.harness.parse_options)
from mro.errors import MroError
from mro.eval.records import append_jsonl, hardware, now, read_jsonl, repair_jsonl
from mro.eval.report import accuracy_plot, markdown_table
from mro.io import OutputLock, atomic_write_json, atomic_write_text, check_output_folder, read_json
from mro.models import load_model
from mro.models.tokenizer import CharTokenizer
from mro.sampling import DecodeConfig
from mro.rewards.multi import MultiReward
from mro.search import SearchConfig, get_decoder
from mro.tasks import get_task
from mro.tasks.base import tiny_batch


#: most examples one evaluation takes (generating 100k problems takes seconds to a minute)
MAX_EXAMPLES = 100_000
#: most candidates per prompt (``--k``)
MAX_CANDIDATES = 256


@dataclass
class EvalConfig(SearchConfig):
    """Evaluate a model on a task over a grid of step counts (decode settings, then search and rewards)."""

    model: str = field(default="sudoku-tiny", metadata={"help": "built-in model name, local folder or hub id"})
    task: str = field(default="sudoku", metadata={"help": "task name"})
    data: str | None = field(default=None, metadata={
        "help": "data file (its shape is read from it), or hub:ID[:CONFIG[:SPLIT]] for a Hugging Face data set, "
                "e.g. hub:openai/gsm8k:main:test (default: the task's generator)"})
    n: int | None = field(default=500, metadata={
        "help": "number of examples (first n of the file; null in a config file: all of it)",
        "min": 1, "max": MAX_EXAMPLES})
    task_options: str = field(default="", metadata={
        "help": "generator options as k=v,k=v (sudoku: min_blanks, max_blanks, unique)"})
    data_seed: int = field(default=1234, metadata={"help": "seed of the generated test problems"})
    protocol: str = field(default="tiny", metadata={"help": "prompt protocol: tiny (built-in layout), d1, mro"})
    decode: str = field(default="vanilla", metadata={"help": "decoding method"})
    gen_length: int | None = field(default=None, metadata={"help": "response length (default: the task's)"})
    steps: list[int] | None = field(default=None, metadata={"help": "step counts to evaluate, e.g. 12,6,4", "min": 1})
    tokens_per_step: list[float] | None = field(default=None, metadata={
        "help": "alternative to steps: steps = ceil(most masked positions / tokens per step)", "gt": 0})
    block_length: int | None = field(default=None, metadata={
        "help": "block length (default: gen_length)", "min": 1})
    temperature: float | None = field(default=None, metadata={
        "help": "sampling temperature (default: the protocol's, d1 0 and mro 0.25, tiny 0; the search decoders "
                "tts-mro, tts-cbr and best-of-n use 0.5 where that is 0)", "min": 0})
    remasking: str = field(default="low_confidence", metadata={"help": "low_confidence | random"})
    cfg_scale: float = field(default=0.0, metadata={"help": "classifier-free guidance scale", "min": 0})
    threshold: float | None = field(default=None, metadata={
        "help": "confidence-threshold parallel decoding", "gt": 0, "max": 1})
    suppress_eos: bool = field(default=False, metadata={"help": "never sample EOS"})
    batch_size: int = field(default=64, metadata={"help": "examples per batch", "min": 1})
    seed: int = field(default=0, metadata={"help": "decoding seed"})
    out: str = field(default="runs/eval", metadata={"help": "output folder"})
    device: str = field(default="cpu", metadata={"help": "cpu, cuda or auto"})
    dtype: str = field(default="auto", metadata={
        "help": "weights: bf16, fp16, fp32 or auto (Hugging Face models: bf16 on CUDA, else fp32)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self):
        super().__post_init__()
        check_fields(self)
        check_output_folder(self.out)
        if self.k > MAX_CANDIDATES:
            raise MroError(f"k must be <= {MAX_CANDIDATES} (each candidate is a copy of the batch), got {self.k}")
        if self.n is not None and self.n < 1:
            raise MroError(f"n must be >= 1, got {self.n}")
        if self.batch_size < 1:
            raise MroError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.steps and self.tokens_per_step:
            raise MroError("give steps or tokens_per_step, not both")
        self.greedy_candidate = self.greedy_for(self.decode)  # recorded as the run used it
        if self.decode != "vanilla" and self.temperature == 0 and self.k > 1:
            raise MroError(f"--decode {self.decode} with k={self.k} needs a temperature > 0 (at 0 the candidates "
                           "are identical); leave --temperature unset for the search default, or use --k 1")
        for s in self.steps or []:
            if s < 1:
                raise MroError(f"steps must be >= 1, got {s}")
        for k in self.tokens_per_step or []:
            if k <= 0:
                raise MroError(f"tokens_per_step must be > 0, got {k}")


def parse_hub_data(spec: str) -> tuple[str, str | None, str | None]:
    """``hub:ID[:CONFIG[:SPLIT]]`` -> ``(id, config or None, split or None)``; an empty part is
    the default (``hub:openai/gsm8k::test``)."""
    parts = spec[len("hub:"):].split(":")
    if not parts[0].strip() or len(parts) > 3:
        raise MroError(f"--data {spec!r}: a hub data set is hub:ID[:CONFIG[:SPLIT]], e.g. hub:openai/gsm8k:main:test")
    parts = [p.strip() or None for p in parts] + [None] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


def load_examples(task, cfg: EvalConfig):
    """The evaluation problems: the first ``n`` of the data file, or ``n`` generated test problems."""
    if cfg.data and cfg.data.startswith("hub:"):
        hub_id, config, split = parse_hub_data(cfg.data)
        if not hasattr(task, "load_hub"):
            raise MroError(f"task {task.name} reads no hub data sets; pass a local data file or leave --data "
                           "unset for the generator")
        examples = task.load_hub(split=split, hub_id=hub_id, config=config)[: cfg.n]
        source = cfg.data
    elif cfg.data:
        examples = task.load(cfg.data)[: cfg.n]
        source = cfg.data
    else:
        if cfg.n is None:
            raise MroError(f"n must be a number when the problems are generated (no data file for {task.name})")
        options = parse_options(cfg.task_options)
        if cfg.n >= 10_000:
            print(f"generating {cfg.n} {task.name} problems ...", file=sys.stderr, flush=True)
        try:
            examples = task.generate(cfg.n, seed=cfg.data_seed, split="test", **options)
        except TypeError as e:
            raise MroError(f"bad task option for {task.name}: {' '.join(str(e).split())}") from None
        source = f"generated test split (seed {cfg.data_seed}{', ' + cfg.task_options if options else ''})"
    if not examples:
        raise MroError(f"no examples to evaluate from {source}")
    return examples, source


def encode_examples(task, model, examples, cfg: EvalConfig) -> tuple[list[list[int]], list[list[int]] | None, int]:
    """Prompt ids, optional pre-filled responses, and the response length."""
    if cfg.protocol == "tiny":
        if not isinstance(model.tokenizer, CharTokenizer):
            raise MroError("protocol 'tiny' is for the built-in tiny models; use --protocol d1 or mro")
        trained = getattr(model, "task", None)
        if trained and trained != task.name:
            from mro.models.load import builtin_models

            shipped = f" (shipped: --model {task.name}-tiny)" if f"{task.name}-tiny" in builtin_models() else ""
            raise MroError(f"model {cfg.model} was trained on {trained}, not {task.name}: its layout and "
                           f"vocabulary do not fit; pick a {task.name} model{shipped} or --task {trained}")
        if not task.tiny_gen_length:
            raise MroError(f"task {task.name} has no layout for the built-in tiny models; "
                           "use --protocol d1 or mro with a real model")
        prompts, responses = tiny_batch(task, examples, model.tokenizer)
        gen_length = task.tiny_gen_length
        if cfg.gen_length not in (None, gen_length):
            raise MroError(f"task {task.name} lays out {gen_length} response tokens for tiny models, "
                           f"not gen_length {cfg.gen_length}")
        return prompts, responses, gen_length
    from mro.tasks.protocols import get_protocol, prompt_ids

    get_protocol(cfg.protocol)  # one-line error for an unknown protocol
    if cfg.gen_length is None:
        raise MroError(f"protocol {cfg.protocol!r} needs --gen-length (the response length in tokens)")
    return [prompt_ids(model, task, ex, cfg.protocol) for ex in examples], None, cfg.gen_length


def step_grid(cfg: EvalConfig, most_masks: int, gen_length: int) -> list[tuple[int, float]]:
    """``(steps, tokens per step)`` settings to run."""
    if cfg.tokens_per_step:
        steps = [max(1, math.ceil(most_masks / k)) for k in cfg.tokens_per_step]
    elif cfg.steps:
        steps = cfg.steps
    elif cfg.protocol != "tiny":
        from mro.tasks.protocols import decode_settings

        steps = [decode_settings(cfg.protocol, cfg.task, gen_length)["steps"]]
    else:  # one step per masked position (the most of any example): no step commits nothing
        steps = [max(1, most_masks)]
    for s in steps:
        if s > gen_length:  # LLaDA's schedule allows it, but every extra step is a forward that commits nothing
            raise MroError(f"steps {s} exceed the {gen_length} response positions; use at most {gen_length} "
                           "steps (one token per step)")
    grid = []
    for s in dict.fromkeys(steps):  # unique, in order
        grid.append((s, most_masks / s))
    return grid


def decode_config(cfg: EvalConfig, gen_length: int, steps: int) -> DecodeConfig:
    """The sampler's settings; block length and temperature default to the protocol's."""
    block, temperature = cfg.block_length, cfg.temperature
    if cfg.protocol != "tiny" and (block is None or temperature is None):
        from mro.tasks.protocols import decode_settings

        settings = decode_settings(cfg.protocol, cfg.task, gen_length)
        block = settings["block_length"] if block is None else block
        temperature = settings["temperature"] if temperature is None else temperature
    if cfg.temperature is None and not temperature and cfg.decode != "vanilla":
        from mro.search.tts import SEARCH_TEMPERATURE

        temperature = SEARCH_TEMPERATURE  # a search needs diverse candidates (docs/method.md section 5)
    return DecodeConfig(gen_length=gen_length, steps=steps, block_length=gen_length if block is None else block,
                        temperature=temperature or 0.0, remasking=cfg.remasking, cfg_scale=cfg.cfg_scale,
                        threshold=cfg.threshold, suppress_eos=cfg.suppress_eos)


def batch_generator(seed: int, steps: int, batch: int, device) -> torch.Generator:
    """The noise of batch ``batch`` (of ``batch_size`` examples) at ``steps`` steps: ``mro eval`` and
    ``mro show`` draw from the same one, so ``show --index i`` replays row ``i`` of an evaluation."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + steps * 10_007 + batch)


def _distributed(cpu: bool):
    """``(rank, world, state)`` under ``accelerate launch``; ``(0, 1, None)`` otherwise.

    ``cpu``: the processes evaluate on the CPU and talk over gloo. accelerate must be told: without
    it, processes on a machine with no GPU would each run alone and all write every row.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched <= 1:
        return 0, 1, None
    from accelerate import PartialState

    state = PartialState(cpu=cpu)
    if state.num_processes != launched:
        raise MroError(f"{launched} processes were launched but accelerate set up {state.num_processes}; "
                       "use accelerate launch --multi_gpu --num_processes N (on CPU add --device cpu)")
    return state.process_index, state.num_processes, state


def run_eval(cfg: EvalConfig) -> dict:
    """Run (or resume) the grid; write outputs to ``cfg.out``; return the summary."""
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    rank, world, state = _distributed(cpu=not device.startswith("cuda"))
    task = get_task(cfg.task)
    examples, source = load_examples(task, cfg)
    if state is not None and device == "cuda":
        device = str(state.device)
    model = load_model(cfg.model, device=device, dtype=cfg.dtype)
    prompts, responses, gen_length = encode_examples(task, model, examples, cfg)
    if responses is not None:
        most = max(sum(t == model.mask_token_id for t in r) for r in responses)
    else:
        most = gen_length
    grid = step_grid(cfg, most, gen_length)
    decode_cfgs = [(s, k, decode_config(cfg, gen_length, s)) for s, k in grid]  # validates every schedule
    decoder = get_decoder(cfg.decode)
    reward = None
    if cfg.decode == "tts-mro" or (cfg.decode == "best-of-n" and cfg.select == "reward"):
        reward = MultiReward(model, task, cfg)  # once per run: loads the PPL scorer
    with OutputLock(cfg.out) if rank == 0 else _no_lock(cfg.out) as out:
        return _run_locked(cfg, out, rank, world, state, task, model, examples, source, prompts, responses,
                           decode_cfgs, decoder, reward, model.device.type)


def _no_lock(out: str):
    """Ranks other than 0 of one launch share rank 0's lock."""
    import contextlib

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return contextlib.nullcontext(path)


def _run_locked(cfg, out: Path, rank, world, state, task, model, examples, source, prompts, responses,
                decode_cfgs, decoder, reward, device_type: str) -> dict:
    final = out / "examples.jsonl"
    mine = final if world == 1 else out / f"examples.rank{rank}.jsonl"
    _check_same_run(out, cfg, device_type)
    repair_jsonl(mine)
    done = {(r["steps"], r["index"]) for p in [final, *out.glob("examples.rank*.jsonl")] for r in read_jsonl(p)
            if r.get("decode") == cfg.decode}
    n_batches = math.ceil(len(examples) / cfg.batch_size)
    jobs = [(si, j) for si in range(len(decode_cfgs)) for j in range(n_batches) if j % world == rank]
    bar = tqdm(jobs, desc=f"eval {cfg.model} on {cfg.task}", unit="batch",
               disable=not cfg.progress or rank != 0)
    for si, j in bar:
        steps, tps, dcfg = decode_cfgs[si]
        # the whole batch is decoded again (same padding, same noise); only missing rows are written
        idx = list(range(j * cfg.batch_size, min(len(examples), (j + 1) * cfg.batch_size)))
        if all((steps, i) in done for i in idx):
            continue
        gen = batch_generator(cfg.seed, steps, j, model.device)
        t0 = time.perf_counter()
        res = decoder(model, [prompts[i] for i in idx], [responses[i] for i in idx] if responses else None,
                      dcfg, generator=gen, task=task, search=cfg, reward=reward)
        seconds = time.perf_counter() - t0
        texts = [model.tokenizer.decode(r.tolist()) for r in res.trajectory.response.cpu()]
        rows = []
        for b, i in enumerate(idx):
            if (steps, i) in done:
                continue
            ex = examples[i]
            rows.append({"decode": cfg.decode, "steps": steps, "tokens_per_step": tps, "index": i, "id": ex.id,
                         "response": texts[b], "extracted": _jsonable(task.extract(texts[b])),
                         "answer": _jsonable(ex.answer), "metrics": task.score(ex, texts[b]),
                         "nfe": res.nfe[b], "scorer_calls": res.scorer_calls[b] if res.scorer_calls else 0.0,
                         "seconds": seconds / len(idx), **(res.details[b] if res.details else {})})
        append_jsonl(mine, rows)
    if state is not None:
        state.wait_for_everyone()
    if rank != 0:
        return {}
    if world > 1:
        _merge_shards(out, final, [s for s, _, _ in decode_cfgs])
    summary = summarize(cfg, task, model, source, read_jsonl(final), decode_cfgs, len(examples))
    summary["hardware"]["processes"] = world
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "table.md", markdown_table(summary))
    summary["plot"] = str(accuracy_plot(summary, out / "accuracy_vs_steps.png"))
    summary["table"] = str(out / "table.md")
    return summary


#: fields that may differ between runs sharing an output folder (rows are keyed by decode and steps;
#: everything else changes results, batch size included: it sets each batch's padding and noise)
_PER_RUN = ("steps", "tokens_per_step", "decode", "progress", "out")


def _check_same_run(out: Path, cfg: EvalConfig, device_type: str = "cpu") -> None:
    """Refuse to mix rows of different settings in one folder; remember this run's settings.

    ``device`` is recorded as the device type the run used (``auto`` on a CPU machine is ``cpu``):
    CUDA and CPU draw different noise.
    """
    path = out / "eval_config.json"
    mine = {k: v for k, v in to_dict(cfg).items() if k not in _PER_RUN}
    mine["device"] = device_type
    mine = json.loads(json.dumps(mine))  # as it reads back (tuples as lists)
    if path.is_file():
        old = read_json(path, "run settings file")
        if not isinstance(old, dict):
            raise MroError(f"{path} is damaged (not a JSON object); use a new --out")
        diff = sorted(k for k in set(old) | set(mine) if old.get(k) != mine.get(k))
        if diff:
            raise MroError(f"{out} holds results of a run with another {diff[0]} "
                           f"({old.get(diff[0])!r}, now {mine.get(diff[0])!r}); resume with the same "
                           "settings or use a new --out")
    else:  # atomic: under accelerate launch another process may be reading it
        atomic_write_json(path, mine)


def _jsonable(x):
    return x if isinstance(x, (str, int, float, bool, type(None), list, dict)) else str(x)


def _merge_shards(out: Path, final: Path, steps_order: list[int]) -> None:
    """Append the processes' rows to ``final`` in the order one process writes them: rows already
    there first, then by position of ``steps`` in the grid, then by example index."""
    old = read_jsonl(final)
    seen = {(r["decode"], r["steps"], r["index"]) for r in old}
    new = {}
    for shard in sorted(out.glob("examples.rank*.jsonl")):
        for r in read_jsonl(shard):
            key = (r["decode"], r["steps"], r["index"])
            if key not in seen:
                new.setdefault(key, r)
    pos = {s: i for i, s in enumerate(steps_order)}
    order = sorted(new, key=lambda k: (pos.get(k[1], len(pos)), -k[1], k[0], k[2]))
    tmp = final.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    append_jsonl(tmp, old + [new[k] for k in order])
    tmp.replace(final)
    for shard in out.glob("examples.rank*.jsonl"):
        shard.unlink()


def summarize(cfg: EvalConfig, task, model, source: str, rows: list[dict], decode_cfgs, n: int) -> dict:
    """Mean of every metric per (decode, steps) setting, with what produced it."""
    results = []
    for steps, tps, _ in decode_cfgs:
        sel = [r for r in rows if r["decode"] == cfg.decode and r["steps"] == steps]
        if not sel:
            continue
        entry = {"decode": cfg.decode, "steps": steps, "tokens_per_step": round(tps, 3), "n": len(sel)}
        for m in task.metrics:
            entry[m] = sum(r["metrics"][m] for r in sel) / len(sel)
        entry["nfe_per_example"] = sum(r["nfe"] for r in sel) / len(sel)
        entry["scorer_calls_per_example"] = sum(r.get("scorer_calls", 0.0) for r in sel) / len(sel)
        entry["seconds"] = sum(r["seconds"] for r in sel)
        results.append(entry)
    decoding = to_dict(decode_cfgs[0][2])
    decoding.pop("steps")
    if cfg.decode != "vanilla":
        decoding["search"] = {k: getattr(cfg, k) for k in ("k", "w", "select", "rewards", "tv_tokens", "ppl_scorer",
                                                          "ppl_upper", "ppl_scale", "group_reward")}
    return {"model": model.describe(), "task": task.name, "metrics": list(task.metrics), "data": source,
            "n_examples": n, "protocol": cfg.protocol, "decode": cfg.decode, "decoding": decoding,
            "seed": cfg.seed, "hardware": hardware(), "date": now(), "config": to_dict(cfg), "results": results}
