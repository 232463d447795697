"""``--model mro`` for lm-evaluation-harness: every mro decoder behind lm-eval's ``LM`` (docs/method.md section 10).

Importing this module registers the model with lm-eval (``lm_eval.api.registry.register_model``);
``mro-lm-eval`` and ``python -m mro.lm_eval`` are lm-eval's own command line with it registered
(lm-eval 0.4 discovers no models outside its source tree: it reads no entry points, and
``--include_path`` loads tasks only), so ``mro-lm-eval --model mro ...`` takes every flag of
``lm_eval``, and ``accelerate launch -m mro.lm_eval --model mro ...`` runs it on several processes.

``--model_args pretrained=NAME,decode=...,steps=...`` takes the fields of ``mro eval``
(:class:`mro.eval.setup.EvalConfig`) under their names and with their defaults, ``pretrained``
for ``model``, plus the likelihood settings of :class:`LMEvalConfig`. A list value (``rewards``)
joins its items with ``+`` (commas separate model_args), or pass model_args as JSON.

- ``generate_until``: requests are decoded in their order in batches of ``batch_size`` (batch ``j``
  draws its noise as ``mro eval``'s batch ``j`` does, so one task run with the same data, prompts
  and settings reproduces ``mro eval`` row by row); the prompt is the model's ``encode_prompt`` of
  the context (its chat template when it has one) plus the protocol's response prefix, as
  ``mro eval`` encodes one (a built-in character model under the tiny protocol reads ``<bos>`` +
  the context, as its task layouts do), the text as is when lm-eval applied a chat template
  already (``--apply_chat_template``); ``max_gen_toks`` is the response length, rounded up to a
  whole number of blocks; the response is cut at its first EOS and at the first of the request's stop
  sequences. Each request's trajectory statistics (forwards, tokens per forward, ...) go into its
  generation arguments under ``mro``, which lm-eval writes to the per-sample log.
- ``loglikelihood``: the Monte-Carlo masked-diffusion estimate (LLaDA's ``get_log_likelihood``,
  :func:`mc_loglikelihood`); ``is_greedy`` by greedy decoding of the continuation's length, one
  token per step. ``loglikelihood_rolling``: the same over the whole text after ``<bos>``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import typing
from dataclasses import dataclass, field

import torch

from mro.config import build
from mro.errors import MroError
from mro.eval.harness import _distributed
from mro.eval.setup import EvalConfig, batch_generator, decode_config, step_grid
from mro.models import load_model
from mro.models.hf import resolve_device
from mro.models.tokenizer import CharTokenizer
from mro.rewards.multi import MultiReward
from mro.sampling import DecodeConfig, generate
from mro.sampling.cache import check_model_caches
from mro.search import get_decoder
from mro.tasks import get_task
from mro.tasks.protocols import get_protocol, response_prefix

try:
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
    from lm_eval.models.utils import normalize_gen_kwargs
except ImportError:  # pragma: no cover - the module is only useful with lm-eval installed
    raise MroError("the lm-eval model needs lm-evaluation-harness: pip install 'mro[lm_eval]'") from None

log = logging.getLogger("lm_eval.mro")  # under lm-eval's logger: its handler and verbosity

MC_SAMPLING = ("even", "antithetic")
#: ``mro eval`` settings that choose problems or outputs, which lm-eval does itself (--tasks, --limit, --output_path)
NOT_MODEL_ARGS = ("data", "n", "task_options", "data_seed", "out", "progress")
#: arguments lm-eval itself adds to model_args (``--trust_remote_code``, ``--max_batch_size``); not used
LM_EVAL_EXTRAS = ("trust_remote_code", "max_batch_size")
#: the ways a request may name its response length (lm-eval's own aliases of max_gen_toks)
MAX_TOKENS_KEYS = ("max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens")


@dataclass
class LMEvalConfig(EvalConfig):
    """``mro eval``'s settings as lm-eval model_args, plus the likelihood estimate's (docs/method.md section 10)."""

    mc_num: int = field(default=128, metadata={
        "help": "Monte-Carlo samples per loglikelihood request (LLaDA's mc_num)", "min": 1, "max": 1_000_000})
    mc_sampling: str = field(default="even", metadata={
        "help": "mask ratios of the samples: even (LLaDA's: evenly spaced counts, one random offset) | antithetic "
                "(pairs of counts l and L+1-l whose masks together cover every continuation token)",
        "choices": MC_SAMPLING})

    def __post_init__(self):
        super().__post_init__()
        if max(len(self.steps or []), len(self.tokens_per_step or []), len(self.threshold or [])) > 1:
            raise MroError("an lm-eval run decodes one setting: give one steps, tokens_per_step or threshold value")


def settings_from_model_args(args: dict) -> LMEvalConfig:
    """model_args (``pretrained`` for ``model``; ``+`` joining the items of a list field or of
    ``rewards``) -> :class:`LMEvalConfig`."""
    hints = typing.get_type_hints(LMEvalConfig)
    lists = {f.name for f in dataclasses.fields(LMEvalConfig) if "list[" in str(hints[f.name])} | {"rewards"}
    values = {}
    for key, value in args.items():
        if key in LM_EVAL_EXTRAS:
            continue
        if value == "" and key not in hints:
            raise MroError(f"model_args has {key!r} without a value: commas separate model_args, so a list "
                           "value joins its items with + (rewards=tv+ppl+q)")
        if key == "model":
            raise MroError("model_args 'model' is not an lm-eval setting: use pretrained=NAME")
        if key in NOT_MODEL_ARGS:
            raise MroError(f"model_args {key!r} is not an lm-eval setting: lm-eval chooses problems and outputs "
                           "(--tasks, --limit, --output_path)")
        key = "model" if key == "pretrained" else key
        values[key] = value.replace("+", ",") if key in lists and isinstance(value, str) else value
    return build(LMEvalConfig, values)


@register_model("mro")
class MroLM(LM):
    """An mro diffusion LM with an mro decoder, as lm-eval's ``LM`` (docs/method.md section 10)."""

    def __init__(self, **model_args):
        super().__init__()
        cfg = settings_from_model_args(model_args)
        device = resolve_device(cfg.device)
        self._rank, self._world_size, self._state = _distributed(cpu=device.type != "cuda")
        if self._state is not None and device.type == "cuda":
            device = self._state.device  # one GPU per process
        self.cfg = cfg
        self.model = load_model(cfg.model, device=str(device), dtype=cfg.dtype, remote_code=cfg.remote_code)
        check_model_caches(self.model, cfg.cache)
        self._device = self.model.device
        trained = getattr(self.model, "task", None)  # a tiny model's own task, unless model_args name one
        self.task = get_task(cfg.task if "task" in model_args or not trained else trained)
        cfg.task = self.task.name  # what the protocol's defaults and the rewards read
        self.decoder = get_decoder(cfg.decode)
        self.reward = None
        if cfg.decode == "tts-mro" or (cfg.decode == "best-of-n" and cfg.select == "reward"):
            self.reward = MultiReward(self.model, self.task, cfg)
        self._templated = False  # lm-eval applied the chat template to the contexts
        self._said: set = set()

    # -- what lm-eval asks of a model -------------------------------------------------------------

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None) -> "MroLM":
        from lm_eval.utils import simple_parse_args_string

        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None) -> "MroLM":
        """model_args win over lm-eval's own ``--batch_size``/``--device``; ``--batch_size auto``
        leaves the default (mro decodes fixed batches); lm-eval's device (``cuda:0`` unless told)
        on a machine without CUDA is the CPU, said in the log."""
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None and k not in arg_dict}
        if str(extra.get("batch_size", "")).startswith("auto"):
            extra.pop("batch_size")
        if str(extra.get("device", "")).startswith("cuda") and not torch.cuda.is_available():
            log.info("lm-eval's device %s is not available: decoding on cpu", extra.pop("device"))
            extra["device"] = "cpu"
        return cls(**extra, **arg_dict)

    @property
    def tokenizer_name(self) -> str:
        return self.model.name.replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return getattr(self.model.tokenizer, "chat_template", None) or ""

    def apply_chat_template(self, chat_history: list[dict], add_generation_prompt: bool = True) -> str:
        """lm-eval's ``--apply_chat_template``: the contexts arrive templated and are encoded as they are."""
        tok = self.model.tokenizer
        if not getattr(tok, "chat_template", None):
            raise MroError(f"model {self.model.name} has no chat template; drop --apply_chat_template")
        self._templated = True
        return tok.apply_chat_template(chat_history, tokenize=False, add_generation_prompt=add_generation_prompt)

    def all_gather(self, tensor):
        if self._state is None:
            return tensor
        from accelerate.utils import gather

        return gather(tensor)

    def gather_object(self, obj, dst=0):
        if self._state is None:
            return [obj]
        result = [None] * self._world_size if self._rank == dst else None
        torch.distributed.gather_object(obj=obj, object_gather_list=result, dst=dst)
        return result

    def barrier(self) -> None:
        if self._state is not None:
            self._state.wait_for_everyone()

    # -- encoding ---------------------------------------------------------------------------------

    def prompt_ids(self, context: str) -> list[int]:
        """The prompt of a context: ``encode_prompt`` (chat template when the model has one) with
        the protocol's response prefix (d1: ``<reasoning>``), as ``mro eval`` encodes a prompt; the
        text as is when lm-eval templated it; ``<bos>`` + text for a built-in character model under
        the tiny protocol."""
        tok, protocol = self.model.tokenizer, self.cfg.protocol
        if protocol == "tiny" and isinstance(tok, CharTokenizer):  # every tiny layout starts with <bos>
            return [tok.bos_token_id] + tok.encode(context)
        prefix = "" if protocol == "tiny" else response_prefix(protocol)
        if self._templated:
            return list(tok(context + prefix, add_special_tokens=False)["input_ids"])
        return self.model.encode_prompt(context, prefix=prefix)

    def text_ids(self, text: str) -> list[int]:
        """A continuation's ids, with no special token added."""
        tok = self.model.tokenizer
        if isinstance(tok, CharTokenizer):
            return tok.encode(text)
        return list(tok(text, add_special_tokens=False)["input_ids"])

    def _say(self, message: str) -> None:
        """Log a message once per run (rank 0)."""
        if message not in self._said and self._rank == 0:
            self._said.add(message)
            log.info(message)

    # -- generate_until ---------------------------------------------------------------------------

    def response_length(self, gen_kwargs: dict) -> int:
        """``max_gen_toks`` of the request (else model_args ``gen_length``, else the tiny layout's
        length or lm-eval's 256), rounded up to whole blocks of ``block_length`` (or of the protocol's
        block when the response is longer than it: the protocol caps its block at the response)."""
        tiny = isinstance(self.model.tokenizer, CharTokenizer)
        default = self.cfg.gen_length or (self.task.tiny_gen_length if tiny else 256)
        asked = next((gen_kwargs[k] for k in MAX_TOKENS_KEYS if gen_kwargs.get(k) is not None), default)
        if not isinstance(asked, int) or isinstance(asked, bool) or asked < 1:
            raise MroError(f"max_gen_toks must be a whole number >= 1, got {asked!r}")
        block = self.cfg.block_length
        if not block and self.cfg.protocol != "tiny":  # the protocol's block, capped at a shorter response
            block = get_protocol(self.cfg.protocol).block_for(self.task.name)
            block = block if asked > block else None
        length = asked if not block else math.ceil(asked / block) * block
        if length != asked:
            self._say(f"max_gen_toks {asked} decodes {length} response tokens (whole blocks of {block})")
        return length

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        from tqdm import tqdm

        log.info("generate_until: %d requests on process %d of %d", len(requests), self._rank, self._world_size)
        if self._templated is False and getattr(self.model.tokenizer, "chat_template", None):
            self._say(f"contexts go through {self.model.name}'s chat template (encode_prompt)")
        ignored = sorted({k for r in requests for k in r.args[1] if k in ("temperature", "do_sample", "top_p")})
        if ignored:
            self._say(f"generation settings {', '.join(ignored)} of the task are not used: mro decodes with "
                      "model_args' temperature (default: the protocol's, as mro eval)")
        groups: dict[tuple, list[int]] = {}  # requests of one response length, in their order
        plans = []
        for i, r in enumerate(requests):
            kwargs = normalize_gen_kwargs(r.args[1], 256)
            until = [s for s in kwargs["until"] if s]
            plans.append((until, self.response_length(r.args[1])))
            groups.setdefault(plans[-1][1], []).append(i)
        out: list[str | None] = [None] * len(requests)
        bs = self.cfg.batch_size
        jobs = [(g, idx[j:j + bs], j // bs) for g, idx in groups.items() for j in range(0, len(idx), bs)]
        for gen_length, idx, batch in tqdm(jobs, desc="mro generate_until", unit="batch",
                                           disable=disable_tqdm or self._rank != 0):
            texts, stats = self._decode([requests[i].args[0] for i in idx], gen_length, batch)
            for i, text, stat in zip(idx, texts, stats):
                until = plans[i][0]
                cut = min([text.find(s) for s in until if s in text], default=len(text))
                out[i] = text[:cut]
                self.cache_hook.add_partial("generate_until", requests[i].args, out[i])
                self._record(requests[i], {**stat, "stopped": cut < len(text)})
        return out

    def _decode(self, contexts: list[str], gen_length: int, batch: int) -> tuple[list[str], list[dict]]:
        """Decode one batch; the response texts (cut at the first EOS) and per-row statistics."""
        cfg, model = self.cfg, self.model
        (steps, _), = step_grid(cfg, gen_length, gen_length)
        dcfg = decode_config(cfg, gen_length, steps, (cfg.threshold or [None])[0])
        prompts = [self.prompt_ids(c) for c in contexts]
        gen = batch_generator(cfg.seed, steps, batch, model.device)
        res = self.decoder(model, prompts, None, dcfg, generator=gen, task=self.task, search=cfg, reward=self.reward)
        eos = set(getattr(model, "eos_token_ids", None) or [model.eos_token_id])
        texts, stats = [], []
        for b, row in enumerate(res.trajectory.response.tolist()):
            end = next((p for p, t in enumerate(row) if t in eos), len(row))
            texts.append(model.tokenizer.decode(row[:end], skip_special_tokens=True))
            nfe = res.nfe[b]
            stats.append({"decode": cfg.decode, "prompt_tokens": len(prompts[b]), "gen_length": gen_length,
                          "steps": steps, "block_length": dcfg.block_length, "temperature": dcfg.temperature,
                          "forwards": nfe, "tokens_per_forward": gen_length / nfe if nfe else None,
                          "response_tokens": end,
                          "scorer_calls": res.scorer_calls[b] if res.scorer_calls else 0.0})
        return texts, stats

    def _record(self, request, stats: dict) -> None:
        """The statistics into the request's own generation arguments (lm-eval logs them per sample);
        not under lm-eval's response cache, whose keys are those arguments."""
        if self.cache_hook.dbdict is not None:
            self._say("with --use_cache the trajectory statistics are not written to the per-sample log")
            return
        request.args[1]["mro"] = stats

    # -- likelihoods ------------------------------------------------------------------------------

    def _generator(self, index: int) -> torch.Generator:
        return torch.Generator(device=self.model.device).manual_seed(self.cfg.seed * 1_000_003 + index)

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        from tqdm import tqdm

        pairs = [(self.prompt_ids(r.args[0]), self.text_ids(r.args[1])) for r in requests]
        lls = [mc_loglikelihood(self.model, prompt, answer, self.cfg.mc_num, self.cfg.batch_size,
                                self.cfg.mc_sampling, self.cfg.cfg_scale, self._generator(i)) if answer else 0.0
               for i, (prompt, answer) in enumerate(tqdm(pairs, desc="mro loglikelihood",
                                                         disable=disable_tqdm or self._rank != 0))]
        greedy = self._greedy_matches(pairs)
        out = []
        for r, ll, g in zip(requests, lls, greedy):
            out.append((ll, g))
            self.cache_hook.add_partial("loglikelihood", r.args, out[-1])
        return out

    def _greedy_matches(self, pairs: list[tuple[list[int], list[int]]]) -> list[bool]:
        """Whether greedy decoding of each continuation's length (one token per step, LLaDA's
        ``suffix_greedy_prediction``) gives the continuation; batched by continuation length."""
        out = [True] * len(pairs)
        by_length: dict[int, list[int]] = {}
        for i, (_, answer) in enumerate(pairs):
            if answer:
                by_length.setdefault(len(answer), []).append(i)
        for length, idx in by_length.items():
            for lo in range(0, len(idx), self.cfg.batch_size):
                rows = idx[lo:lo + self.cfg.batch_size]
                traj = generate(self.model, [pairs[i][0] for i in rows], DecodeConfig(gen_length=length, steps=length))
                for i, decoded in zip(rows, traj.response.tolist()):
                    out[i] = decoded == pairs[i][1]
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """The whole text after ``<bos>`` (nothing when the tokenizer has none) in one window: a text
        longer than the model's positions is an error, not chunked (a diffusion LM scores a window
        bidirectionally, so lm-eval's overlapping windows would not add up to the text's likelihood)."""
        bos = getattr(self.model.tokenizer, "bos_token_id", None)
        limit = getattr(getattr(self.model.module, "cfg", None), "max_len", None) or getattr(
            getattr(self.model.module, "config", None), "max_position_embeddings", None)
        out = []
        for i, r in enumerate(requests):
            prompt, answer = ([bos] if bos is not None else []), self.text_ids(r.args[0])
            if limit and len(prompt) + len(answer) > limit:
                raise MroError(f"loglikelihood_rolling: a text of {len(answer)} tokens exceeds {self.model.name}'s "
                               f"{limit} positions (mro scores a text in one window and does not chunk it)")
            ll = mc_loglikelihood(self.model, prompt, answer, self.cfg.mc_num, self.cfg.batch_size,
                                  self.cfg.mc_sampling, self.cfg.cfg_scale, self._generator(i)) if answer else 0.0
            out.append(ll)
            self.cache_hook.add_partial("loglikelihood_rolling", r.args, ll)
        return out


def mask_counts_and_sets(length: int, n: int, sampling: str, generator: torch.Generator,
                         device) -> torch.Tensor:
    """``[n, length]`` boolean masks over a continuation of ``length`` tokens (docs/method.md section 10).

    ``even`` (LLaDA's): counts ``round(linspace(k, k + (n-1) L/n, n))`` wrapped into ``1..L`` with
    one random offset ``k``, each at random positions; ``antithetic``: pairs, count ``l`` uniform on
    ``1..L`` at random positions and count ``L + 1 - l`` on the other ``L - l`` positions plus one of
    the first's, so every token is masked in each pair. Every row's count is uniform on ``1..L``
    and its positions uniform given the count, as the estimate needs.
    """
    order = torch.rand(n, length, generator=generator, device=device).argsort(-1)
    rank = order.argsort(-1)  # rank[i, p]: where position p comes in row i's random order
    if sampling == "even":
        k = torch.randint(1, length + 1, (), generator=generator, device=device).item()
        counts = torch.round(torch.linspace(float(k), k + (n - 1) * (length / n), n, device=device)).long()
        counts = (counts - 1) % length + 1
        return rank < counts[:, None]
    counts = torch.randint(1, length + 1, ((n + 1) // 2,), generator=generator, device=device)
    first = rank[0::2] < counts[:, None]
    second = rank[0::2][: n // 2] >= (counts[: n // 2, None] - 1)  # the complement plus the first's last position
    masks = torch.empty(n, length, dtype=torch.bool, device=device)
    masks[0::2], masks[1::2] = first, second
    return masks


@torch.no_grad()
def mc_loglikelihood(model, prompt: list[int], answer: list[int], mc_num: int, batch_size: int,
                     sampling: str, cfg_scale: float, generator: torch.Generator) -> float:
    """LLaDA's Monte-Carlo estimate of ``log p(answer | prompt)`` (docs/method.md section 10):
    the mean over ``mc_num`` masked copies of ``(L / l) * sum of log p(masked token | the rest)``,
    ``l`` of the ``L`` answer tokens masked, the prompt never; ``batch_size`` copies per forward.
    Written here: no library has the masked-diffusion bound (LLaDA's is a script, not a package)."""
    dev, length = model.device, len(answer)
    seq = torch.tensor(prompt + answer, device=dev)
    masks = mask_counts_and_sets(length, mc_num, sampling, generator, dev)
    total = 0.0
    for lo in range(0, mc_num, batch_size):
        m = masks[lo:lo + batch_size]
        x = seq.repeat(m.shape[0], 1)
        x[:, len(prompt):][m] = model.mask_token_id
        attn = torch.ones_like(x)
        if cfg_scale > 0:  # LLaDA's guidance: the unconditional row has its prompt masked too
            un = x.clone()
            un[:, :len(prompt)] = model.mask_token_id
            cond, unc = model.logits(torch.cat([x, un]), torch.cat([attn, attn])).float().chunk(2)
            logits = unc + (cfg_scale + 1) * (cond - unc)
        else:
            logits = model.logits(x, attn).float()
        logp = logits[:, len(prompt):].log_softmax(-1).gather(-1, seq[len(prompt):].expand(m.shape[0], -1)[..., None])
        per_row = (logp.squeeze(-1) * m).sum(-1) * length / m.sum(-1)
        total += float(per_row.sum())
    return total / mc_num


def main(argv: list[str] | None = None) -> None:
    """``mro-lm-eval`` / ``python -m mro.lm_eval``: lm-eval's command line with ``--model mro``
    registered; an mro error is one line, exit status 2."""
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    try:
        cli_evaluate()
    except MroError as e:
        print(f"mro-lm-eval: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
