"""Native LLaDA (docs/method.md section 2, "Native LLaDA and Dream"): loads a LLaDA checkpoint
without its remote code and caches keys and values.

The architecture as published (``modeling_llada.py``, an OLMo derivative, ``block_type: llama``):

- ``model.transformer.wte`` embeds ids (``embedding_size`` rows, else ``vocab_size``); no
  positional embedding; ``input_emb_norm`` scales by ``sqrt(d_model)``.
- each of ``model.transformer.blocks.N``: ``x += attn_out(attention(attn_norm(x)))`` with
  ``q_proj``/``k_proj``/``v_proj`` (``n_kv_heads`` key/value heads: GQA; biases only with
  ``include_qkv_bias``) and rotary embeddings (``rope_theta``; in float32 for half-precision
  weights, ``rope_full_precision``) at absolute positions ``0 .. L-1``, **no causal mask**; then
  ``x += ff_out(silu(ff_proj(h)) * up_proj(h))`` with ``h = ff_norm(x)``. Norms are RMSNorm
  (``rms_norm_eps``, computed in float32) with a weight and no bias.
- ``model.transformer.ln_f``, then the head ``model.transformer.ff_out`` (or ``wte``'s weight
  when ``weight_tying``), times ``1 / sqrt(d_model)`` when ``scale_logits``.
- padding: the 2-D attention mask masks padded keys (every query sees every real position);
  positions are not shifted for left padding, as in the published code.
- the mask id is ``mask_token_id`` (126336 in LLaDA-8B).

Other block types, ALiBi, LayerNorm, q/k norms, biases everywhere and block groups are refused
in one line naming the option (load those with the checkpoint's own code: ``remote_code``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaConfig, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput
from transformers.models.llama.modeling_llama import LlamaRMSNorm, LlamaRotaryEmbedding

from mro.errors import MroError
from mro.models.native import LayerParts, NativeLM

#: LLaDA-8B-Instruct's published config (what a scaled-down random model starts from); its
#: ``n_kv_heads`` (32) equals ``n_heads``, the default, so it is left out here and a copy with fewer
#: heads needs no second change. Every field checked against a public copy of the checkpoint's
#: ``config.json`` (d_model, heads, layers, MLP width, vocabulary, rope_theta, eps, special ids)
LLADA_8B_CONFIG = {
    "model_type": "llada", "d_model": 4096, "n_heads": 32, "n_layers": 32,
    "mlp_hidden_size": 12288, "vocab_size": 126464, "embedding_size": 126464, "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5, "max_sequence_length": 4096, "weight_tying": False, "include_qkv_bias": False,
    "mask_token_id": 126336, "eos_token_id": 126081, "pad_token_id": 126081,
}

#: option -> the values the native implementation runs (anything else is refused)
SUPPORTED = {"block_type": ("llama",), "activation_type": ("silu",), "layer_norm_type": ("rms",),
             "alibi": (False,), "rope": (True,), "attention_layer_norm": (False,), "include_bias": (False,),
             "block_group_size": (1,), "layer_norm_with_affine": (True,), "bias_for_layer_norm": (None, False),
             "yarn": (False,)}


class LLaDAConfig(PretrainedConfig):
    """LLaDA's ``config.json`` fields (names as published); unknown fields are kept as they are."""

    model_type = "llada"
    attribute_map = {"hidden_size": "d_model", "num_attention_heads": "n_heads", "num_hidden_layers": "n_layers"}

    def __init__(self, d_model: int = 4096, n_heads: int = 32, n_kv_heads: int | None = None, n_layers: int = 32,
                 mlp_hidden_size: int | None = None, mlp_ratio: int = 4, vocab_size: int = 126464,
                 embedding_size: int | None = None, rms_norm_eps: float = 1e-5, rope_theta: float = 10000.0,
                 rope_full_precision: bool = True, weight_tying: bool = False, include_qkv_bias: bool = False,
                 scale_logits: bool = False, input_emb_norm: bool = False, init_std: float = 0.02,
                 max_sequence_length: int = 4096, multi_query_attention: bool | None = None,
                 mask_token_id: int = 126336, **kwargs):
        kwargs.pop("tie_word_embeddings", None)  # the head is tied by weight_tying, never by transformers
        self.d_model, self.n_heads, self.n_layers = d_model, n_heads, n_layers
        self.n_kv_heads, self.multi_query_attention = n_kv_heads, multi_query_attention
        self.mlp_hidden_size, self.mlp_ratio = mlp_hidden_size, mlp_ratio
        self.vocab_size, self.embedding_size = vocab_size, embedding_size
        self.rms_norm_eps, self.rope_theta, self.rope_full_precision = rms_norm_eps, rope_theta, rope_full_precision
        self.weight_tying, self.include_qkv_bias = weight_tying, include_qkv_bias
        self.scale_logits, self.input_emb_norm, self.init_std = scale_logits, input_emb_norm, init_std
        self.max_sequence_length, self.mask_token_id = max_sequence_length, mask_token_id
        for option, allowed in SUPPORTED.items():
            if option in kwargs and kwargs[option] not in allowed:
                raise MroError(f"LLaDA config {option}={kwargs[option]!r} is not supported by mro's native LLaDA "
                               f"(it runs {option}={allowed[0]!r}); load the checkpoint with its own code "
                               f"(remote_code: true)")
        super().__init__(tie_word_embeddings=False, **kwargs)
        if d_model % n_heads or n_heads % self.kv_heads:
            raise MroError(f"LLaDA config: d_model ({d_model}) must be a multiple of n_heads ({n_heads}), and "
                           f"n_heads of the key/value heads ({self.kv_heads})")

    @property
    def kv_heads(self) -> int:
        """LLaDA's ``effective_n_kv_heads``: ``n_kv_heads``, else 1 under multi-query attention, else ``n_heads``."""
        if self.n_kv_heads:
            return int(self.n_kv_heads)
        return 1 if self.multi_query_attention else int(self.n_heads)

    @property
    def mlp_size(self) -> int:
        return int(self.mlp_hidden_size or self.mlp_ratio * self.d_model)

    @property
    def rows(self) -> int:
        """Rows of the embedding and of the head (``embedding_size`` may pad ``vocab_size``)."""
        return int(self.embedding_size or self.vocab_size)


class LLaDABlock(nn.Module):
    """One LLaDA llama block, its weights under the checkpoint's names."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        d, kv = config.d_model, config.kv_heads * (config.d_model // config.n_heads)
        self.attn_norm = LlamaRMSNorm(d, eps=config.rms_norm_eps)
        self.q_proj = nn.Linear(d, d, bias=config.include_qkv_bias)
        self.k_proj = nn.Linear(d, kv, bias=config.include_qkv_bias)
        self.v_proj = nn.Linear(d, kv, bias=config.include_qkv_bias)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.ff_norm = LlamaRMSNorm(d, eps=config.rms_norm_eps)
        self.ff_proj = nn.Linear(d, config.mlp_size, bias=False)
        self.up_proj = nn.Linear(d, config.mlp_size, bias=False)
        self.ff_out = nn.Linear(config.mlp_size, d, bias=False)

    def mlp(self, h: torch.Tensor) -> torch.Tensor:
        # by hand: transformers' LlamaMLP computes the same but names its weights gate/up/down_proj
        return self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class LLaDABackbone(nn.Module):
    """``model.transformer``: ``wte``, ``blocks``, ``ln_f`` and (untied) ``ff_out``."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        parts = {"wte": nn.Embedding(config.rows, config.d_model),
                 "blocks": nn.ModuleList(LLaDABlock(config) for _ in range(config.n_layers)),
                 "ln_f": LlamaRMSNorm(config.d_model, eps=config.rms_norm_eps)}
        if not config.weight_tying:
            parts["ff_out"] = nn.Linear(config.d_model, config.rows, bias=False)
        self.transformer = nn.ModuleDict(parts)


class LLaDAModelLM(NativeLM, PreTrainedModel):
    """LLaDA under its published class name and weight names; ``forward(input_ids, attention_mask)``
    takes what the remote code takes and returns position-aligned ``logits``."""

    config_class = LLaDAConfig
    _no_split_modules = ["LLaDABlock"]
    shifted = False

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        self.model = LLaDABackbone(config)
        self.n_heads, self.n_kv_heads = config.n_heads, config.kv_heads
        self.head_dim = config.d_model // config.n_heads
        rope = LlamaConfig(hidden_size=config.d_model, num_attention_heads=config.n_heads,
                           num_key_value_heads=config.kv_heads, rope_theta=config.rope_theta,
                           max_position_embeddings=config.max_sequence_length)
        self.rotary = LlamaRotaryEmbedding(config=rope)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.config.init_std)
            if getattr(module, "bias", None) is not None:
                module.bias.data.zero_()
        elif isinstance(module, LlamaRMSNorm):
            module.weight.data.fill_(1.0)

    def get_input_embeddings(self):
        return self.model.transformer.wte

    def get_output_embeddings(self):
        t = self.model.transformer
        return t["ff_out"] if "ff_out" in t else t.wte

    # -- NativeLM hooks ------------------------------------------------------------------------
    def _layers(self):
        return self.model.transformer.blocks

    def _parts(self, b: LLaDABlock) -> LayerParts:
        return LayerParts(b.attn_norm, b.q_proj, b.k_proj, b.v_proj, b.attn_out, b.ff_norm, b.mlp)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.model.transformer.wte(ids)
        return x * (self.config.d_model ** 0.5) if self.config.input_emb_norm else x

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.transformer.ln_f(x)

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        logits = F.linear(h, self.get_output_embeddings().weight)
        return logits * (1 / math.sqrt(self.config.d_model)) if self.config.scale_logits else logits

    def _rope_dtype(self, dtype: torch.dtype) -> torch.dtype:
        low = dtype in (torch.bfloat16, torch.float16)
        return torch.float32 if low and self.config.rope_full_precision else dtype

    def _inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
        """Padded keys masked (``[B, 1, 1, L]``), positions ``0 .. L-1`` whatever the padding."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        if attention_mask is None or bool(attention_mask.all()):
            return None, positions
        return attention_mask.bool()[:, None, None, :], positions

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **unused) -> MaskedLMOutput:
        """Position-aligned logits ``[B, L, V]`` (``attention_mask``: ``[B, L]``, 0 = padding)."""
        mask, positions = self._inputs(input_ids, attention_mask)
        hidden, _, _ = self.hidden_window(input_ids, mask, positions, 0, input_ids.shape[1])
        return MaskedLMOutput(logits=self._head(hidden))

    @classmethod
    def load_tokenizer(cls, name: str, hub: dict):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name, trust_remote_code=False, **hub)
