"""Hugging Face backends (docs/method.md sections 2 and 3).

:class:`HFDiffusionLM` puts any of these behind :class:`mro.models.base.DiffusionLM`:

- LLaDA / LLaDA-1.5 (``model_type == "llada"``): mro's native implementation
  (:mod:`mro.models.llada`, no remote code, KV cache), or the checkpoint's own code through
  ``AutoModel`` with ``trust_remote_code`` when loaded with ``remote_code=True`` (other ``llada*``
  types always); logits are position-aligned;
- Dream (``model_type == "Dream"``): native (:mod:`mro.models.dream`) or remote code alike; its
  logits at ``i`` predict position ``i + 1``, so the adapter shifts them right by one
  (``cat([logits[:, :1], logits[:, :-1]], 1)``, as Dream's own sampler);
- any ``AutoModelForMaskedLM`` (BERT, RoBERTa, ModernBERT, ...): a masked LM is a diffusion LM.

:class:`HFCausalScorer` wraps any ``AutoModelForCausalLM`` as the perplexity scorer of ``R_ppl``.

Special ids are read from the checkpoint, never defaulted: the mask id from ``config.mask_token_id``
(LLaDA: 126336) else ``tokenizer.mask_token_id``; EOS ids from the config, the generation config
and the tokenizer. transformers is imported lazily (it is the ``hf`` extra); LLaDA's and Dream's
remote code is known to work with ``transformers>=4.44,<5``. The KV-cache methods
(``logits_and_cache``, ``window_logits``) are the native modules' own.

Example (needs the weights locally or hub access)::

    model = HFDiffusionLM.load("GSAI-ML/LLaDA-8B-Instruct", device="cuda", dtype="bf16")
    ids = model.encode_prompt("What is 2 + 3?")
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Sequence

import torch

from mro.errors import MroError
from mro.models.base import DiffusionLM, KVCache
from mro.models.native import load_native, native_class

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
KINDS = ("llada", "dream", "masked_lm")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; anything else as torch reads it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise MroError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise MroError(f"device {device!r} is not available ({why}); use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise MroError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) "
                           f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
        return dev
    if dev.type == "mps" and torch.backends.mps.is_available():
        return dev
    raise MroError(f"device {device!r} is not available here; use cpu, cuda, cuda:N or auto")


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``bf16``/``fp16``/``fp32``; ``auto`` = bf16 on a CUDA device that supports it, else fp32."""
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in DTYPES:
        raise MroError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}, auto")
    return DTYPES[dtype]


def _dtype_kwarg() -> str:
    """transformers >= 4.56 names the load dtype ``dtype``; older releases ``torch_dtype``."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _transformers():
    """The transformers module, or a one-line error saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise MroError("Hugging Face models need transformers: pip install 'mro[hf]'") from None
    return transformers


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _hub_kwargs(name: str) -> dict:
    """``local_files_only=True`` for a hub id while the hub is offline (cached models still load)."""
    from mro.hub import hub_offline

    return {"local_files_only": True} if not Path(name).exists() and hub_offline() else {}


def _load_error(name: str, error: Exception, offline: bool = False, flag: str = "--model") -> MroError:
    """One line: a broken local folder names its problem; a hub id says how to pass a path."""
    if Path(name).exists():
        return MroError(f"cannot load model folder {name}: {_first_line(error)}")
    why = ("nor in the Hugging Face cache, and the hub is unreachable (offline)" if offline else
           f"(and the Hugging Face hub did not serve it: gated or no such repo, {type(error).__name__})")
    return MroError(
        f"cannot load {name!r}: not a local folder {why}; download it where you have access "
        f"(huggingface-cli download {name} --local-dir DIR) and pass the folder instead, "
        f"e.g. {flag} DIR"
    )


def _ids(*values) -> list[int]:
    """Unique ints, in order, out of ints / lists of ints / None."""
    out: list[int] = []
    for v in values:
        for i in v if isinstance(v, (list, tuple)) else [v]:
            if isinstance(i, int) and i not in out:
                out.append(i)
    return out


def _kind(config) -> str:
    """Which adapter a config needs: ``llada``, ``dream`` or ``masked_lm`` (one-line error else)."""
    model_type = getattr(config, "model_type", "")
    if model_type == "Dream":
        return "dream"
    if model_type.lower().startswith("llada"):
        return "llada"
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "masked_lm"
    raise MroError(
        f"model_type {model_type!r} is not a diffusion LM mro knows (LLaDA, Dream or a masked LM "
        "such as BERT, RoBERTa, ModernBERT)"
    )


class HFDiffusionLM(DiffusionLM):
    """A transformers model behind the :class:`DiffusionLM` protocol.

    Build with :meth:`load` (hub id or local folder) or :meth:`from_module` (a model already in
    memory; tests build tiny ones from configs).
    """

    def __init__(self, module: torch.nn.Module, tokenizer, name: str, kind: str | None = None):
        self.module = module
        self.tokenizer = tokenizer
        self.name = name
        config = module.config
        self.kind = kind or _kind(config)
        if self.kind not in KINDS:
            raise MroError(f"unknown model kind {self.kind!r}; choose from {', '.join(KINDS)}")
        mask = getattr(config, "mask_token_id", None)
        if mask is None:
            mask = getattr(tokenizer, "mask_token_id", None)
        if mask is None:
            raise MroError(f"model {name}: no mask token id in its config (mask_token_id) or tokenizer")
        self.mask_token_id = int(mask)
        generation = getattr(module, "generation_config", None)
        #: every id that ends a response (config, generation config, tokenizer; config's first).
        self.eos_token_ids = _ids(getattr(config, "eos_token_id", None),
                                  getattr(generation, "eos_token_id", None),
                                  getattr(tokenizer, "eos_token_id", None))
        self.eos_token_id = self.eos_token_ids[0] if self.eos_token_ids else None
        pad = _ids(getattr(tokenizer, "pad_token_id", None), getattr(config, "pad_token_id", None),
                   self.eos_token_id)
        pad = [p for p in pad if p != self.mask_token_id]
        if not pad:
            raise MroError(f"model {name}: no pad token id (tokenizer, config) and no EOS to pad with")
        self.pad_token_id = pad[0]
        params = inspect.signature(module.forward).parameters
        embeddings = getattr(getattr(module, "base_model", module), "embeddings", None)
        # 0-based positions for left-padded rows, unless the model derives them from pad ids itself
        # (RoBERTa family) or cannot take them.
        self._pass_positions = (self.kind == "masked_lm" and "position_ids" in params
                                and not hasattr(embeddings, "padding_idx"))

    @classmethod
    def from_module(cls, module: torch.nn.Module, tokenizer, name: str = "hf-module",
                    kind: str | None = None) -> "HFDiffusionLM":
        """Wrap a model already in memory (eval mode is set)."""
        module.eval()
        return cls(module, tokenizer, name, kind)

    @classmethod
    def load(cls, name: str, device: str = "auto", dtype: str = "auto",
             trust_remote_code: bool = True, remote_code: bool = False) -> "HFDiffusionLM":
        """Load by hub id or local folder; ``dtype`` in bf16/fp16/fp32/auto, ``device`` cpu/cuda/auto.

        A config whose ``model_type`` mro implements natively (``llada``: :mod:`mro.models.llada`,
        ``Dream``: :mod:`mro.models.dream`) loads without remote code and can cache keys and
        values; ``remote_code=True`` runs the checkpoint's own modelling code instead. Other
        LLaDA variants and masked LMs load through ``AutoModel`` with ``trust_remote_code``.
        """
        tf = _transformers()
        dev = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, dev)
        hub = _hub_kwargs(name)
        try:
            config_dict, _ = tf.PretrainedConfig.get_config_dict(name, **hub)
            native = None if remote_code else native_class(str(config_dict.get("model_type", "")))
            if native is not None:
                module, tokenizer = load_native(native, name, torch_dtype, _dtype_kwarg(), hub)
                kind = _kind(module.config)
            else:
                config = tf.AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code, **hub)
                kind = _kind(config)
                auto = tf.AutoModelForMaskedLM if kind == "masked_lm" else tf.AutoModel
                module = auto.from_pretrained(name, config=config, trust_remote_code=trust_remote_code,
                                              **{_dtype_kwarg(): torch_dtype}, **hub)
                tokenizer = tf.AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code, **hub)
        except MroError:
            raise
        except Exception as e:  # OSError offline, ValueError for broken folders, ...
            raise _load_error(name, e, offline=bool(hub)) from None
        module.to(dev)
        return cls.from_module(module, tokenizer, name, kind)

    @classmethod
    def load_adapter(cls, folder: str, device: str = "auto", dtype: str = "auto",
                     remote_code: bool = False) -> "HFDiffusionLM":
        """A LoRA adapter folder (written by ``mro train rl|rs --lora-r``): its base model (by the
        hub id or path the adapter records) with the adapter merged in."""
        import json

        try:
            from peft import PeftModel
        except ImportError:
            raise MroError("loading a LoRA adapter needs peft: pip install 'mro[hf]'") from None
        try:
            base_name = json.loads((Path(folder) / "adapter_config.json").read_text())["base_model_name_or_path"]
        except (OSError, ValueError, KeyError, TypeError):
            raise MroError(f"{folder}/adapter_config.json does not name its base model") from None
        if not base_name:
            raise MroError(f"{folder}/adapter_config.json does not name its base model")
        base = cls.load(base_name, device=device, dtype=dtype, remote_code=remote_code)
        try:
            merged = PeftModel.from_pretrained(base.module, folder).merge_and_unload()
        except Exception as e:
            raise MroError(f"cannot apply the LoRA adapter in {folder} to {base_name}: {_first_line(e)}") from None
        return cls.from_module(merged, base.tokenizer, name=folder, kind=base.kind)

    @property
    def vocab_size(self) -> int:
        out = self.module.get_output_embeddings() if hasattr(self.module, "get_output_embeddings") else None
        if out is not None and getattr(out, "weight", None) is not None:
            return int(out.weight.shape[0])
        return int(self.module.config.vocab_size)

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Position-aligned logits. The attention mask is passed only when a row is padded.

        LLaDA's original remote code ignores attention masks (pads are attended to, as in LLaDA's
        and d1's own batched evaluation); its updated code honours them.
        """
        padded = attention_mask is not None and not bool(attention_mask.all())
        kwargs: dict = {}
        if self.kind == "dream":
            # Dream's own sampler: a [B, 1, L, L] boolean mask and 0-based positions when padded,
            # "full" attention otherwise.
            from mro.models.dream import padded_inputs

            mask, positions = padded_inputs(attention_mask)
            kwargs = ({"attention_mask": "full"} if mask is None else
                      {"attention_mask": mask, "position_ids": positions})
        elif padded:
            kwargs["attention_mask"] = attention_mask
            if self._pass_positions:
                kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        out = self.module(input_ids, **kwargs)
        logits = out.logits if hasattr(out, "logits") else out[0]
        if self.kind == "dream":
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits

    def logits_at(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                  positions: torch.Tensor) -> torch.Tensor:
        """``[B, V]`` logits of one position per row; native models run their head on those only."""
        own = getattr(self.module, "logits_at", None)
        if not callable(own):
            return super().logits_at(input_ids, attention_mask, positions)
        return own(input_ids, attention_mask, positions)

    @property
    def supports_kv_cache(self) -> bool:
        """Native LLaDA and Dream cache keys and values; remote code and masked LMs do not."""
        return callable(getattr(self.module, "window_logits", None))

    def logits_and_cache(self, input_ids: torch.Tensor,
                         attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache]:
        if not self.supports_kv_cache:
            return super().logits_and_cache(input_ids, attention_mask)
        return self.module.logits_and_cache(input_ids, attention_mask)

    def window_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, cache: KVCache,
                      start: int, end: int, logits_end: int | None = None) -> torch.Tensor:
        if not self.supports_kv_cache:
            return super().window_logits(input_ids, attention_mask, cache, start, end, logits_end)
        return self.module.window_logits(input_ids, attention_mask, cache, start, end, logits_end)

    def encode_prompt(self, user: str, system: str | None = None, prefix: str = "") -> list[int]:
        """Prompt ids: the tokenizer's chat template when it has one, else plain encoding.

        With a template (Instruct models) the messages are ``[system?, user]`` with
        ``add_generation_prompt=True``; a template that rejects the system role gets it folded into
        the user turn. ``prefix`` is text the response starts with (d1 appends ``<reasoning>``).
        """
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            messages = [{"role": "user", "content": user}]
            if system:
                messages.insert(0, {"role": "system", "content": system})
            try:
                text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            except Exception:  # jinja2 TemplateError: no system role
                if not system:
                    raise
                merged = [{"role": "user", "content": f"{system}\n\n{user}"}]
                text = tok.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
            return tok(text + prefix, add_special_tokens=False)["input_ids"]
        text = f"{system}\n\n{user}" if system else user
        return tok(text + prefix)["input_ids"]


class HFCausalScorer:
    """Perplexity of texts under an autoregressive LM (the scorer of ``R_ppl``, docs/method.md section 3).

    ``PPL = exp(mean token NLL)`` over the text's tokens, padding excluded. When the tokenizer has
    a BOS token it is prepended, so every text token is scored; otherwise the first token is
    context only. A text with no scored token (empty, or one token and no BOS) has PPL ``inf``,
    which ``R_ppl = (C - min(PPL, C)) / F`` turns into the lowest reward. Texts longer than the
    model's context keep their first ``max_length`` tokens.
    """

    def __init__(self, module: torch.nn.Module, tokenizer, name: str = "hf-causal",
                 max_length: int | None = None):
        self.module = module.eval()
        self.tokenizer = tokenizer
        self.name = name
        config = module.config
        self.max_length = max_length or getattr(config, "n_positions", None) or getattr(
            config, "max_position_embeddings", None) or 1024
        pad = _ids(getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None), 0)
        self.pad_token_id = pad[0]
        self.bos_token_id = getattr(tokenizer, "bos_token_id", None)

    @classmethod
    def load(cls, name: str, device: str = "auto", dtype: str = "auto", gguf_file: str | None = None,
             trust_remote_code: bool = False) -> "HFCausalScorer":
        """Load any ``AutoModelForCausalLM`` by hub id or folder (``gguf_file``: a GGUF in it)."""
        tf = _transformers()
        dev = resolve_device(device)
        hub = _hub_kwargs(name)
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            module = tf.AutoModelForCausalLM.from_pretrained(
                name, trust_remote_code=trust_remote_code, **{_dtype_kwarg(): resolve_dtype(dtype, dev)},
                **extra, **hub)
            tokenizer = tf.AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code, **extra, **hub)
        except Exception as e:
            raise _load_error(name, e, offline=bool(hub), flag="--ppl-scorer") from None
        return cls(module.to(dev), tokenizer, name)

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def _token_ids(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        if self.bos_token_id is not None:
            ids = [self.bos_token_id] + ids
        return ids[: self.max_length]

    @torch.no_grad()
    def perplexity(self, texts: Sequence[str], batch_size: int = 8) -> list[float]:
        """PPL of each text (``inf`` when no token is scored); batches are right-padded."""
        out: list[float] = []
        for lo in range(0, len(texts), batch_size):
            rows = [self._token_ids(t) for t in texts[lo:lo + batch_size]]
            width = max(2, max(len(r) for r in rows))
            ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
            attn = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, :len(r)] = torch.as_tensor(r, dtype=torch.long)
                attn[i, :len(r)] = 1
            ids, attn = ids.to(self.device), attn.to(self.device)
            logits = self.module(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
            nll = -torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            scored = attn[:, 1:].float()
            count = scored.sum(-1)
            mean = (nll * scored).sum(-1) / count.clamp_min(1)
            for m, c in zip(mean.tolist(), count.tolist()):
                out.append(math.exp(m) if c > 0 and m < 700 else math.inf)
        return out
