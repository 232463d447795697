"""One evaluation setup (docs/method.md section 8): everything an evaluation needs before it decodes.

API::

    setup = prepare_eval(cfg)              # cfg: EvalConfig (or a subclass: ShowConfig, CorrelationConfig)
    setup.task, setup.model                # the task and the loaded model (device "auto" resolved once)
    setup.examples, setup.source           # the problems and where they came from
    setup.problems                         # mro.problems.Encoded: prompts, responses, gen_length, masks
    setup.grid                             # [Setting(steps, tokens_per_step, threshold, decode)]
    setup.decoder, setup.reward            # the decode method and its MultiReward (None if unused)
    setup.batch(j)                         # example indices of batch j (of cfg.batch_size)
    setup.run(setting, idx, generator)     # DecodeResult of those examples under one setting

``mro eval`` (:mod:`mro.eval.harness`), ``mro show`` and ``mro analyze correlation`` all start
here, so the same flags give the same problems, prompts, step counts and decoder everywhere.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import torch

from mro.config import parse_options
from mro.errors import MroError
from mro.io import check_output_folder
from mro.models import load_model
from mro.models.load import REMOTE_CODE_HELP
from mro.models.hf import resolve_device
from mro.problems import Encoded, check_steps, encode
from mro.rewards.multi import MultiReward
from mro.sampling import DecodeConfig
from mro.sampling.cache import CACHE_MODES, check_model_caches
from mro.sampling.sampler import REMASKING
from mro.search import SearchConfig, get_decoder
from mro.search.decoders import DecodeResult, decoder_names
from mro.tasks import get_task

#: most examples one evaluation takes (generating 100k problems takes seconds to a minute)
MAX_EXAMPLES = 100_000


@dataclass
class EvalConfig(SearchConfig):
    """Evaluate a model on a task over a grid of step counts and thresholds (decode settings, then
    search and rewards)."""

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
    decode: str = field(default="vanilla", metadata={"help": "decoding method", "choices": decoder_names})
    gen_length: int | None = field(default=None, metadata={"help": "response length (default: the task's)"})
    steps: list[int] | None = field(default=None, metadata={"help": "step counts to evaluate, e.g. 12,6,4", "min": 1})
    tokens_per_step: list[float] | None = field(default=None, metadata={
        "help": "alternative to steps: steps = ceil(most masked positions / tokens per step)", "gt": 0})
    block_length: int | None = field(default=None, metadata={
        "help": "block length (default: gen_length)", "min": 1})
    temperature: float | None = field(default=None, metadata={
        "help": "sampling temperature (default: the protocol's, d1 0 and mro 0.25, tiny 0; the search decoders "
                "tts-mro, tts-cbr and best-of-n use 0.5 where that is 0)", "min": 0})
    remasking: str = field(default="low_confidence", metadata={"help": "low_confidence | random",
                                                               "choices": REMASKING})
    cfg_scale: float = field(default=0.0, metadata={"help": "classifier-free guidance scale", "min": 0})
    threshold: list[float] | None = field(default=None, metadata={
        "help": "confidence-threshold parallel decoding (Fast-dLLM): commit every position at least this "
                "confident, at least one per step; several values sweep like --steps, e.g. 0.5,0.7,0.9",
        "gt": 0, "max": 1})
    min_tokens: int = field(default=1, metadata={
        "help": "with --threshold: commit at least this many positions per step (the most confident; 1 = "
                "Fast-dLLM's rule): a step budget and a confidence threshold in one decoder", "min": 1})
    suppress_eos: bool = field(default=False, metadata={"help": "never sample EOS"})
    cache: str = field(default="none", metadata={
        "help": "KV cache (Fast-dLLM, docs/method.md section 2): none | prefix (recompute the block and what "
                "follows) | dual (recompute the block only)", "choices": CACHE_MODES})
    cache_refresh: int = field(default=0, metadata={
        "help": "with --cache prefix|dual: also refill the cache with a full forward every this many steps inside a block (0 = only at block boundaries, Fast-dLLM's rule; 1 = every step, equal to none)", "min": 0})
    batch_size: int = field(default=64, metadata={"help": "examples per batch", "min": 1})
    seed: int = field(default=0, metadata={"help": "decoding seed"})
    out: str = field(default="runs/eval", metadata={"help": "output folder"})
    device: str = field(default="cpu", metadata={"help": "cpu, cuda or auto"})
    dtype: str = field(default="auto", metadata={
        "help": "weights: bf16, fp16, fp32 or auto (Hugging Face models: bf16 on CUDA, else fp32)"})
    remote_code: bool = field(default=False, metadata={"help": REMOTE_CODE_HELP})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self):
        super().__post_init__()
        check_output_folder(self.out)
        if isinstance(self.threshold, (int, float)):  # one threshold given in Python
            self.threshold = [float(self.threshold)]
        if self.steps and self.tokens_per_step:
            raise MroError("give steps or tokens_per_step, not both")
        if self.min_tokens > 1 and not self.threshold:
            raise MroError("min_tokens is a rule of threshold decoding; give --threshold too")
        self.greedy_candidate = self.greedy_for(self.decode)  # recorded as the run used it
        if self.decode != "vanilla" and self.temperature == 0 and self.k > 1:
            raise MroError(f"--decode {self.decode} with k={self.k} needs a temperature > 0 (at 0 the candidates "
                           "are identical); leave --temperature unset for the search default, or use --k 1")


@dataclass
class Setting:
    """One point of the evaluation grid."""

    steps: int
    #: most masked positions / steps (what a fixed schedule commits per step)
    tokens_per_step: float
    threshold: float | None
    decode: DecodeConfig


@dataclass
class EvalSetup:
    """What :func:`prepare_eval` returns (see the module docstring)."""

    cfg: EvalConfig
    task: object
    model: object
    examples: list
    source: str
    problems: Encoded
    grid: list[Setting]
    decoder: object
    reward: MultiReward | None

    @property
    def n_batches(self) -> int:
        return math.ceil(len(self.examples) / self.cfg.batch_size)

    def batch(self, j: int) -> list[int]:
        """Indices of batch ``j``: always the same examples, however a run is split or resumed."""
        bs = self.cfg.batch_size
        return list(range(j * bs, min(len(self.examples), (j + 1) * bs)))

    def run(self, setting: Setting, idx: list[int], generator: torch.Generator | None) -> DecodeResult:
        """Decode the examples ``idx`` under ``setting``."""
        prompts, responses = self.problems.rows(idx)
        return self.decoder(self.model, prompts, responses, setting.decode, generator=generator, task=self.task,
                            search=self.cfg, reward=self.reward)


def prepare_eval(cfg: EvalConfig, device: str | None = None, need_reward: bool = False) -> EvalSetup:
    """Load the task, problems and model, encode the prompts, build the grid and the decoder.

    ``device`` overrides ``cfg.device`` (a process of ``accelerate launch`` passes its own);
    ``need_reward``: build the multi-reward even when the decoder does not use it (the correlation
    analysis scores every trajectory)."""
    task = get_task(cfg.task)
    examples, source = load_examples(task, cfg)
    model = load_model(cfg.model, device=str(resolve_device(device or cfg.device)), dtype=cfg.dtype,
                       remote_code=cfg.remote_code)
    check_model_caches(model, cfg.cache)
    problems = encode(task, model, examples, cfg.protocol, cfg.gen_length)
    grid = [Setting(s, tps, thr, decode_config(cfg, problems.gen_length, s, thr))  # validates every schedule
            for thr in (cfg.threshold or [None]) for s, tps in step_grid(cfg, problems.most_masks, problems.gen_length)]
    decoder = get_decoder(cfg.decode)
    reward = None
    if need_reward or cfg.decode == "tts-mro" or (cfg.decode == "best-of-n" and cfg.select == "reward"):
        reward = MultiReward(model, task, cfg)  # once per run: loads the PPL scorer
    return EvalSetup(cfg, task, model, examples, source, problems, grid, decoder, reward)


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
    check_steps(steps, gen_length)
    return [(s, most_masks / s) for s in dict.fromkeys(steps)]  # unique, in order


def decode_config(cfg: EvalConfig, gen_length: int, steps: int, threshold: float | None = None) -> DecodeConfig:
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
                        threshold=threshold, min_tokens=cfg.min_tokens, suppress_eos=cfg.suppress_eos,
                        cache=cfg.cache, cache_refresh=cfg.cache_refresh)


def batch_generator(seed: int, steps: int, batch: int, device) -> torch.Generator:
    """The noise of batch ``batch`` (of ``batch_size`` examples) at ``steps`` steps: ``mro eval`` and
    ``mro show`` draw from the same one, so ``show --index i`` replays row ``i`` of an evaluation."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + steps * 10_007 + batch)
