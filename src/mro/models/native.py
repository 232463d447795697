"""What native LLaDA and Dream share (docs/method.md section 2, "Native LLaDA and Dream").

Both are a pre-norm transformer (RMSNorm, rotary attention, SwiGLU MLP) run with full,
bidirectional attention; :mod:`mro.models.llada` and :mod:`mro.models.dream` say where they
differ (weight names, q/k/v biases, rotary precision, padding, Dream's shifted logits). Here:

- :class:`NativeLM`, the layer loop over a window of positions whose other keys and values come
  from a :class:`~mro.models.base.KVCache` (the whole sequence is the window of a full forward).
  transformers' ``LlamaModel``/``Qwen2Model`` forwards cannot do this (their caches only append,
  for causal decoding), so the loop is written here; the norms, rotary embedding, MLPs and
  projections are transformers' own modules or plain ``nn.Linear``.
- :func:`native_class`, :func:`load_native`: checkpoint folder or hub id -> module + tokenizer,
  without remote code, with one-line errors for missing or misshapen weights.
- :func:`random_model`: a randomly initialised model of any shape from a config dict in memory
  (benchmarks and tests), e.g. ``random_model({**LLADA_8B_CONFIG, "n_layers": 2, "d_model": 256,
  "n_heads": 4, "mlp_hidden_size": 768})``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from mro.errors import MroError
from mro.models.base import KVCache


class LayerParts(NamedTuple):
    """One layer's modules, under any architecture's names."""

    attn_norm: Callable
    q: Callable
    k: Callable
    v: Callable
    out: Callable
    mlp_norm: Callable
    mlp: Callable


class NativeLM:
    """Mixin of the native ``PreTrainedModel`` classes: full forward, cache fill, windowed forward,
    logits of one position per row.

    A subclass sets ``n_heads``, ``n_kv_heads``, ``head_dim``, ``rotary`` (a transformers rotary
    embedding) and ``shifted`` (Dream: logits at ``i`` predict ``i + 1``), and implements
    ``_embed``, ``_layers``, ``_parts``, ``_final_norm``, ``_head``, ``_rope_dtype`` and
    ``_inputs`` (2-D attention mask -> attention mask for SDPA and positions).
    """

    shifted: bool = False
    base_model_prefix = "model"  # the published checkpoints' weights all start with ``model.``
    supports_gradient_checkpointing = True
    gradient_checkpointing = False  # set by transformers' gradient_checkpointing_enable()

    # -- the layer loop ------------------------------------------------------------------------
    def _rotate(self, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        dtype = q.dtype
        q, k = apply_rotary_pos_emb(q.to(cos.dtype), k.to(cos.dtype), cos, sin)
        return q.to(dtype), k.to(dtype)

    def _layer(self, layer, x, cos, sin, mask, past_k, past_v, lo: int, hi: int):
        from transformers.models.llama.modeling_llama import repeat_kv

        p = self._parts(layer)
        b, t, _ = x.shape
        h = p.attn_norm(x)
        q = p.q(h).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = p.k(h).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = p.v(h).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = self._rotate(q, k, cos, sin)
        keys, values = k, v
        if past_k is not None:  # the window's keys/values between the cached ones
            keys = torch.cat([past_k[:, :, :lo], k.to(past_k.dtype), past_k[:, :, hi:]], dim=2)
            values = torch.cat([past_v[:, :, :lo], v.to(past_v.dtype), past_v[:, :, hi:]], dim=2)
        groups = self.n_heads // self.n_kv_heads
        att = F.scaled_dot_product_attention(q, repeat_kv(keys, groups), repeat_kv(values, groups),
                                             attn_mask=mask, is_causal=False)
        x = x + p.out(att.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))
        x = x + p.mlp(p.mlp_norm(x))
        return x, k, v

    def hidden_window(self, input_ids: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor,
                      lo: int, hi: int, cache: KVCache | None = None, keep: bool = False):
        """Final-norm hidden states of positions ``lo .. hi - 1`` and (``keep``) every layer's
        keys/values there (else empty lists: a plain forward does not hold them all).

        ``mask`` is a boolean SDPA mask broadcastable to ``[B, 1, L, L]`` (``True`` = attend) or
        ``None``; ``positions`` are ``[B or 1, L]`` rotary positions. Without ``cache`` the window
        must be the whole sequence; with it, positions outside the window are read from it.
        """
        x = self._embed(input_ids[:, lo:hi])
        inv = self.rotary.inv_freq
        if inv.dtype != torch.float32:  # module.to(bf16) casts buffers too; rotary angles stay float32
            self.rotary.inv_freq = self.rotary.original_inv_freq.to(device=inv.device, dtype=torch.float32)
        rope = torch.empty(0, dtype=self._rope_dtype(x.dtype), device=x.device)
        cos, sin = self.rotary(rope, positions[:, lo:hi])
        rows = mask if mask is None or mask.shape[2] == 1 else mask[:, :, lo:hi]
        keys, values = [], []
        for i, layer in enumerate(self._layers()):
            past_k = past_v = None
            if cache is not None:
                past_k, past_v = cache.keys[i], cache.values[i]
            args = (layer, x, cos, sin, rows, past_k, past_v, lo, hi)
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x, k, v = checkpoint(self._layer, *args, use_reentrant=False)
            else:
                x, k, v = self._layer(*args)
            if keep:
                keys.append(k)
                values.append(v)
        return self._final_norm(x), keys, values

    # -- the KV-cache protocol (mro.models.base.DiffusionLM), position-aligned logits ----------
    def logits_and_cache(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """One full forward: ``[B, L, V]`` position-aligned logits and every layer's keys/values."""
        mask, positions = self._inputs(input_ids, attention_mask)
        hidden, keys, values = self.hidden_window(input_ids, mask, positions, 0, input_ids.shape[1], keep=True)
        logits = self._head(hidden)
        if self.shifted:
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits, KVCache(keys, values)

    def logits_at(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                  positions: torch.Tensor) -> torch.Tensor:
        """``[B, V]`` position-aligned logits of one position per row: the head runs on those only."""
        mask, rope_positions = self._inputs(input_ids, attention_mask)
        hidden, _, _ = self.hidden_window(input_ids, mask, rope_positions, 0, input_ids.shape[1])
        source = (positions - 1).clamp_min(0) if self.shifted else positions
        return self._head(hidden[torch.arange(input_ids.shape[0], device=hidden.device), source])

    def window_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, cache: KVCache,
                      start: int, end: int, logits_end: int | None = None) -> torch.Tensor:
        """Position-aligned logits of ``start .. logits_end - 1`` from the window ``start .. end - 1``.

        A shifted model (Dream) reads position ``i``'s logits from hidden state ``i - 1``, so its
        window starts one position earlier (at ``start - 1`` when ``start > 0``).
        """
        logits_end = end if logits_end is None else logits_end
        self._check_window(input_ids, cache, start, end, logits_end)
        lo = start - 1 if self.shifted and start > 0 else start
        mask, positions = self._inputs(input_ids, attention_mask)
        hidden, _, _ = self.hidden_window(input_ids, mask, positions, lo, end, cache)
        source = torch.arange(start, logits_end, device=hidden.device)
        if self.shifted:
            source = (source - 1).clamp_min(0)
        return self._head(hidden[:, source - lo])

    def _check_window(self, input_ids, cache: KVCache, start: int, end: int, logits_end: int) -> None:
        b, length = input_ids.shape
        if len(cache.keys) != len(self._layers()) or cache.length != length or cache.batch_size != b:
            raise MroError(f"the KV cache holds {len(cache.keys)} layers x {cache.batch_size} rows x "
                           f"{cache.length} positions; this forward has {len(self._layers())} x {b} x {length}")
        if not 0 <= start < end <= length or not start < logits_end <= end:
            raise MroError(f"window [{start}, {end}) with logits up to {logits_end} does not fit a sequence "
                           f"of {length} (need 0 <= start < logits_end <= end <= length)")


def native_class(model_type: str):
    """The native class for a config's ``model_type`` (``llada``, ``Dream``), else ``None``."""
    if model_type == "llada":
        from mro.models.llada import LLaDAModelLM

        return LLaDAModelLM
    if model_type == "Dream":
        from mro.models.dream import DreamModel

        return DreamModel
    return None


def _reason(error: Exception) -> str:
    """transformers' load error in one line: its "size mismatch ..." line if it has one."""
    lines = [s.strip() for s in str(error).strip().splitlines() if s.strip()]
    mismatch = [s for s in lines if "size mismatch" in s]
    return (mismatch or lines or [type(error).__name__])[0]


def _missing(name, missing: list[str], config) -> MroError:
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return MroError(f"cannot load model folder {name}: weight {missing[0]}{more} is missing from its "
                    f"safetensors files; the config ({config.model_type}) needs it")


def _check_weights(cls, config, folder: Path) -> None:
    """A local folder's safetensors headers (every shard) against the weights ``config`` needs."""
    from safetensors import safe_open

    shapes: dict[str, list[int]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            shapes.update({k: list(f.get_slice(k).get_shape()) for k in f.keys()})
    if not shapes:
        return  # no safetensors: from_pretrained names what it looked for
    with torch.device("meta"):
        needed = {k: list(v.shape) for k, v in cls(config).state_dict().items()}
    missing = [k for k in needed if k not in shapes]
    if missing:
        raise _missing(folder, missing, config)
    for k, shape in needed.items():
        if shapes[k] != shape:
            raise MroError(f"cannot load model folder {folder}: weight {k} has shape {shapes[k]}, its "
                           f"config.json needs {shape}")


def load_native(cls, name: str, torch_dtype: torch.dtype, dtype_kwarg: str, hub: dict):
    """``cls.from_pretrained`` (safetensors, sharded with an index too) and the tokenizer, no remote
    code; a weight the config needs that the folder lacks, or one of another shape, is one line."""
    config = cls.config_class.from_pretrained(name, **hub)  # the config classes reject what they cannot run
    if Path(name).is_dir():
        _check_weights(cls, config, Path(name))
    try:
        module, info = cls.from_pretrained(name, config=config, output_loading_info=True,
                                           **{dtype_kwarg: torch_dtype}, **hub)
    except (RuntimeError, ValueError) as e:  # a hub checkpoint's "size mismatch for <weight>: ..."
        raise MroError(f"cannot load model {name}: {_reason(e)}") from None
    if info.get("missing_keys"):  # a hub checkpoint (a local folder was checked above)
        raise _missing(name, sorted(info["missing_keys"]), config)
    return module, cls.load_tokenizer(name, hub)


def numeric_tokenizer(vocab_size: int, mask_token_id: int, eos_token_id: int | None, pad_token_id: int | None):
    """A word-level tokenizer over ``t0 .. t{V-1}`` (a random model has no real vocabulary);
    specials are the ids the config names."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    specials = {"mask_token": f"t{mask_token_id}"}
    if eos_token_id is not None:
        specials["eos_token"] = f"t{eos_token_id}"
    if pad_token_id is not None:
        specials["pad_token"] = f"t{pad_token_id}"
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="t0", **specials)


def random_model(config: dict, seed: int = 0, dtype: torch.dtype = torch.float32, device: str = "cpu",
                 tokenizer=None):
    """A randomly initialised native LLaDA or Dream of the shape ``config`` (a ``config.json`` dict
    with ``model_type`` ``llada`` or ``Dream``) behind :class:`~mro.models.hf.HFDiffusionLM`.

    ``tokenizer`` defaults to :func:`numeric_tokenizer`. Weights are drawn with ``seed`` by the
    model's own initialiser (normal, std ``init_std`` / ``initializer_range``; norms at one).
    """
    from mro.models.hf import HFDiffusionLM

    values = dict(config)
    model_type = values.pop("model_type", None)
    cls = native_class(model_type or "")
    if cls is None:
        raise MroError(f"random_model builds model_type 'llada' or 'Dream', got {model_type!r}")
    cfg = cls.config_class(**values)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = cls(cfg)
    module.to(device=device, dtype=dtype)
    if tokenizer is None:
        eos = cfg.eos_token_id[0] if isinstance(cfg.eos_token_id, list) else cfg.eos_token_id
        tokenizer = numeric_tokenizer(int(module.get_output_embeddings().weight.shape[0]), cfg.mask_token_id,
                                      eos, cfg.pad_token_id)
    return HFDiffusionLM.from_module(module, tokenizer, name=f"random-{model_type}")
