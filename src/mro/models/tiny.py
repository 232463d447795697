"""The built-in tiny diffusion LM: a bidirectional transformer in plain torch.

(The same transformer with ``causal=True`` is the built-in autoregressive PPL scorer.)

RoPE (as LLaDA uses; docs/method.md section 9: it is what makes learning happen within minutes on CPU),
pre-norm blocks, SDPA attention without a causal mask. Saved as ``config.json`` +
``model.safetensors`` + ``tokenizer.json`` in one folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from mro.errors import MroError
from mro.models.base import DiffusionLM, KVCache
from mro.models.tokenizer import CharTokenizer


@dataclass
class TinyConfig:
    """Shape of the tiny transformer."""

    vocab_size: int = 64
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512
    max_len: int = 64
    rope_theta: float = 10000.0
    causal: bool = False  # True: the autoregressive scorer of the PPL reward (models/ar.py)

    def __post_init__(self):
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise MroError("tiny model: d_model / n_heads must be an even whole number")


def _rope_table(cfg: TinyConfig) -> torch.Tensor:
    """``[max_len, head_dim / 2]`` complex rotations ``exp(i * pos * theta_j)``."""
    hd = cfg.d_model // cfg.n_heads
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = torch.outer(torch.arange(cfg.max_len, dtype=torch.float32), inv)
    return torch.polar(torch.ones_like(ang), ang)


def _apply_rope(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs ``(x[2j], x[2j+1])`` of ``x [B, H, L, hd]`` by ``rot [L, hd/2]`` (complex product)."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * rot).flatten(-2).type_as(x)


def _query_rows(mask: torch.Tensor | None, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor | None:
    """The attention mask of one query per row, ``[B, 1, 1, L]`` (or None)."""
    if mask is None or (mask.dim() == 4 and mask.shape[-2] == 1):  # none, or key padding only
        return mask
    if mask.dim() == 2:  # causal [L, L]
        return mask[positions][:, None, None, :]
    return mask[rows, 0, positions][:, None, None, :]  # causal and padding [B, 1, L, L]


def _check_window(cache: KVCache, input_ids: torch.Tensor, start: int, end: int, logits_end: int | None) -> None:
    """A window must lie inside the cached sequence (one line, not a shape error from deep inside)."""
    b, n = input_ids.shape
    if cache.length != n or cache.batch_size != b:
        raise MroError(f"KV cache holds {cache.batch_size} rows of {cache.length} positions, the input {b} of {n}")
    if not 0 <= start < end <= n or not start < (end if logits_end is None else logits_end) <= end:
        raise MroError(f"window {start}..{end} (logits to {logits_end}) is not inside the {n} cached positions")


class Block(nn.Module):
    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))

    def _qkv(self, x, rot):
        """Queries, keys and values ``[B, H, n, hd]`` of ``x [B, n, d]``, RoPE applied with ``rot [n, hd/2]``."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        return _apply_rope(q, rot), _apply_rope(k, rot), v

    def forward(self, x, rot, attn_mask, positions=None, is_causal=False, kv_out=None):
        """All positions; or, with ``positions [B]``, only that query per row: ``[B, d]``.
        ``kv_out``: a list that receives this layer's ``(keys, values)``."""
        b, n, d = x.shape
        q, k, v = self._qkv(x, rot)
        if kv_out is not None:
            kv_out.append((k, v))
        if positions is not None:
            rows = torch.arange(b, device=x.device)
            q = q[rows, :, positions][:, :, None]  # [B, H, 1, hd]
            attn_mask = _query_rows(attn_mask, rows, positions)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
            h = x[rows, positions] + self.proj(y.reshape(b, d))
            return h + self.ff(self.ln2(h))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        x = x + self.proj(y.transpose(1, 2).reshape(b, n, d))
        return x + self.ff(self.ln2(x))

    def window(self, x, rot, attn_mask, keys, values, start, queries=None):
        """The window's hidden states ``x [B, w, d]`` (positions ``start .. start + w - 1``) against
        the cached ``keys``/``values [B, H, L, hd]`` of every other position; ``queries``: only the
        first that many window positions are returned (what the next layer or the head needs)."""
        b, w, d = x.shape
        q, k, v = self._qkv(x, rot)
        end = start + w
        k = torch.cat([keys[:, :, :start], k, keys[:, :, end:]], 2)
        v = torch.cat([values[:, :, :start], v, values[:, :, end:]], 2)
        if queries is not None and queries < w:
            q, x = q[:, :, :queries], x[:, :queries]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        x = x + self.proj(y.transpose(1, 2).reshape(b, q.shape[2], d))
        return x + self.ff(self.ln2(x))


class TinyTransformer(nn.Module):
    """Bidirectional transformer: ids ``[B, L]`` -> logits ``[B, L, V]``."""

    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.register_buffer("rope", _rope_table(cfg), persistent=False)
        self.apply(self._init)

    def _apply(self, fn, *args, **kwargs):
        """``.to(dtype)`` would cast the complex RoPE table to a real one (dropping the rotation's
        imaginary part: silently wrong outputs in bf16/fp16); it stays complex64 on the new device."""
        super()._apply(fn, *args, **kwargs)
        self.rope = _rope_table(self.cfg).to(self.embed.weight.device)
        return self

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def _check_length(self, n: int) -> None:
        if n > self.cfg.max_len:
            raise MroError(f"sequence length {n} exceeds the tiny model's max_len {self.cfg.max_len}")

    @staticmethod
    def _padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """Key padding mask ``[B, 1, 1, L]`` broadcast over heads and queries (None: nothing padded)."""
        if attention_mask is None or bool(attention_mask.all()):
            return None
        return attention_mask.bool()[:, None, None, :]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, kv_out: list | None = None) -> torch.Tensor:
        """``[B, L, V]`` logits; with ``positions [B]``, ``[B, V]`` at one position per row (the last
        block then runs only that query, its MLP and the head: same numbers, less work).
        ``kv_out``: a list that receives every layer's ``(keys, values)`` (the KV cache)."""
        n = input_ids.shape[1]
        self._check_length(n)
        rot = self.rope[:n]
        mask = self._padding_mask(attention_mask)
        fast_causal = self.cfg.causal and mask is None and positions is None  # SDPA's own causal kernel
        if self.cfg.causal and not fast_causal:
            tri = torch.ones(n, n, dtype=torch.bool, device=input_ids.device).tril()
            mask = tri if mask is None else (mask & tri)
        x = self.embed(input_ids)
        last = len(self.blocks) - 1
        for i, blk in enumerate(self.blocks):
            x = blk(x, rot, mask, positions if i == last else None, is_causal=fast_causal, kv_out=kv_out)
        return self.head(self.ln_f(x))

    def window(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, cache: KVCache,
               start: int, end: int, logits_end: int) -> torch.Tensor:
        """Logits ``[B, logits_end - start, V]`` recomputing positions ``start .. end - 1`` only
        (``DiffusionLM.window_logits``); the last layer runs only the queries the logits need."""
        if self.cfg.causal:
            raise MroError("the tiny causal scorer has no diffusion KV cache")
        self._check_length(input_ids.shape[1])
        mask = self._padding_mask(attention_mask)
        rot = self.rope[start:end]
        x = self.embed(input_ids[:, start:end])
        last = len(self.blocks) - 1
        for i, blk in enumerate(self.blocks):
            x = blk.window(x, rot, mask, cache.keys[i], cache.values[i], start,
                           queries=logits_end - start if i == last else None)
        return self.head(self.ln_f(x))


def _tiny_config(raw: dict, path: Path) -> TinyConfig:
    """``TinyConfig`` of a ``config.json``, every shape field a positive whole number."""
    known = {f.name: f.type for f in fields(TinyConfig)}
    values = {k: v for k, v in raw.items() if k in known}
    for k, v in values.items():
        if k == "causal":
            if not isinstance(v, bool):
                raise MroError(f"{path}: causal must be true or false, got {v!r}")
        elif k == "rope_theta":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
                raise MroError(f"{path}: rope_theta must be a positive number, got {v!r}")
        elif isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 20:
            raise MroError(f"{path}: {k} must be a whole number between 1 and {1 << 20}, got {v!r}")
    return TinyConfig(**values)


#: config fields that set the size of some weight dimension, checked in this order
_SHAPE_FIELDS = ("vocab_size", "d_model", "d_ff")


def _check_weights(module: nn.Module, state: dict, cfg: TinyConfig, folder: Path) -> None:
    """Name the first disagreement between the weights and ``config.json`` (not pages of
    size-mismatch text)."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    layers = len({k.split(".")[1] for k in got if k.startswith("blocks.")})
    if layers != cfg.n_layers:
        raise MroError(f"{folder}: config.json says n_layers = {cfg.n_layers} but model.safetensors has "
                       f"{layers} layers")
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or extra:
        what = f"lacks {missing[0]}" if missing else f"has an unexpected {extra[0]}"
        raise MroError(f"{folder}: model.safetensors {what}; it is not a tiny mro model of this config.json")
    for k, shape in expected.items():
        if got[k] == shape:
            continue
        for dim, (want, have) in enumerate(zip(shape, got[k])):
            if want != have:
                names = [f for f in _SHAPE_FIELDS if getattr(cfg, f) == want]
                if names:
                    raise MroError(f"{folder}: config.json says {names[0]} = {want} but model.safetensors has "
                                   f"{have} ({k} is {list(got[k])})")
                break
        raise MroError(f"{folder}: {k} has shape {list(got[k])} in model.safetensors but config.json "
                       f"implies {list(shape)}")


class TinyDLM(DiffusionLM):
    """The built-in tiny model behind the :class:`DiffusionLM` protocol.

    ``task``: the task it was trained on, when known (the harness refuses a task it does not fit).
    """

    task: str | None = None

    def __init__(self, module: TinyTransformer, tokenizer: CharTokenizer, name: str = "tiny"):
        self.module = module
        self.tokenizer = tokenizer
        self.name = name
        self.mask_token_id = tokenizer.mask_token_id
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id

    @classmethod
    def create(cls, tokenizer: CharTokenizer | None = None, name: str = "tiny", **shape) -> "TinyDLM":
        tokenizer = tokenizer or CharTokenizer()
        cfg = TinyConfig(vocab_size=tokenizer.vocab_size, **shape)
        return cls(TinyTransformer(cfg), tokenizer, name)

    def logits(self, input_ids, attention_mask=None):
        return self.module(input_ids, attention_mask)

    def logits_at(self, input_ids, attention_mask, positions):
        return self.module(input_ids, attention_mask, positions)

    @property
    def supports_kv_cache(self) -> bool:  # the causal scorer is not a diffusion model
        return not self.module.cfg.causal

    def logits_and_cache(self, input_ids, attention_mask=None):
        if not self.supports_kv_cache:
            return super().logits_and_cache(input_ids, attention_mask)
        kv: list = []
        logits = self.module(input_ids, attention_mask, kv_out=kv)
        return logits, KVCache([k for k, _ in kv], [v for _, v in kv])

    def window_logits(self, input_ids, attention_mask, cache, start, end, logits_end=None):
        if not self.supports_kv_cache:
            return super().window_logits(input_ids, attention_mask, cache, start, end, logits_end)
        _check_window(cache, input_ids, start, end, logits_end)
        return self.module.window(input_ids, attention_mask, cache, start, end, end if logits_end is None else logits_end)

    @property
    def vocab_size(self) -> int:
        return self.module.cfg.vocab_size

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        task = {"task": self.task} if getattr(self, "task", None) else {}  # what the model was trained on
        (folder / "config.json").write_text(json.dumps({"model_type": "mro-tiny", **asdict(self.module.cfg), **task},
                                                       indent=2))
        save_file({k: v.detach().contiguous().cpu() for k, v in self.module.state_dict().items()},
                  str(folder / "model.safetensors"))
        self.tokenizer.save(folder)

    @classmethod
    def load(cls, folder: str | Path, name: str | None = None) -> "TinyDLM":
        """Load a model folder, checking every file first: a damaged, truncated or empty file, or
        weights that disagree with ``config.json`` or the tokenizer, is a one-line ``MroError``.

        The model's :attr:`task` (what it was trained on) comes from ``config.json``'s ``task``
        or, failing that, the ``task`` of the ``train_config.json`` its trainer left."""
        from mro.io import read_json

        folder = Path(folder)
        cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise MroError(f"missing model file {p}")
        raw = read_json(cfg_path, "model config")
        if not isinstance(raw, dict) or raw.pop("model_type", None) != "mro-tiny":
            raise MroError(f"{cfg_path} is not a tiny mro model config (model_type != 'mro-tiny')")
        task = raw.pop("task", None)
        cfg = _tiny_config(raw, cfg_path)
        tokenizer = CharTokenizer.load(folder)
        if tokenizer.vocab_size > cfg.vocab_size:
            raise MroError(f"{folder}: tokenizer.json has {tokenizer.vocab_size} tokens but config.json says "
                           f"vocab_size = {cfg.vocab_size}")
        try:
            state = load_file(str(w_path))
        except Exception as e:  # safetensors' own error type for a truncated, empty or foreign file
            raise MroError(f"weights file {w_path} is damaged, truncated or not safetensors "
                           f"({' '.join(str(e).split())[:120]})") from None
        module = TinyTransformer(cfg)
        _check_weights(module, state, cfg, folder)
        module.load_state_dict(state)
        module.eval()
        model = cls(module, tokenizer, name or str(folder))
        if task is None and (folder / "train_config.json").is_file():
            train_cfg = read_json(folder / "train_config.json", "training config")
            task = train_cfg.get("task") if isinstance(train_cfg, dict) else None
        model.task = task if isinstance(task, str) else None
        return model
