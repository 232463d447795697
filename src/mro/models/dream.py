"""Native Dream (docs/method.md section 2, "Native LLaDA and Dream"): loads a Dream checkpoint
without its remote code and caches keys and values.

Dream (``modeling_dream.py``) is Qwen2 run without a causal mask, so this is transformers' own
``Qwen2Model`` (its embedding, decoder layers, norms and rotary embedding; weights under the
same names: ``model.embed_tokens``, ``model.layers.N.self_attn.{q,k,v,o}_proj`` with q/k/v
biases, ``model.layers.N.mlp.{gate,up,down}_proj``, ``model.norm``, ``lm_head``) driven by the
bidirectional layer loop of :class:`mro.models.native.NativeLM`. Grouped-query attention comes
from ``num_key_value_heads``; rotary cos/sin are computed in float32 and applied in the weights'
dtype, as Dream does.

Two things differ from LLaDA. Dream's logits at ``i`` predict position ``i + 1`` (it was
adapted from an autoregressive model), so ``forward`` returns them unshifted, as the remote code
does, and the adapter (:class:`mro.models.hf.HFDiffusionLM`) and the KV-cache methods shift them.
And a padded batch gets Dream's own inputs (:func:`padded_inputs`): a ``[B, 1, L, L]`` boolean
mask that pairs real queries with real keys, and positions counted from each row's first real
token.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Qwen2Config
from transformers.modeling_outputs import MaskedLMOutput
from transformers.models.qwen2.modeling_qwen2 import Qwen2Model, Qwen2PreTrainedModel, Qwen2RotaryEmbedding

from mro.errors import MroError
from mro.models.native import LayerParts, NativeLM

#: Dream-v0-7B's published shape (Qwen2.5-7B's), what a scaled-down random model starts from; the shape
#: checked against public copies of Qwen2.5-7B's config.json, the special ids against Dream's published ones
DREAM_7B_CONFIG = {
    "model_type": "Dream", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
    "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064, "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6, "max_position_embeddings": 131072, "tie_word_embeddings": False, "hidden_act": "silu",
    "mask_token_id": 151666, "pad_token_id": 151643, "bos_token_id": 151643, "eos_token_id": 151643,
}


def padded_inputs(attention_mask: torch.Tensor | None):
    """Dream's own inputs for a padded batch: ``([B, 1, L, L]`` boolean mask, ``[B, L]`` positions),
    or ``(None, None)`` when no row is padded (Dream then runs ``attention_mask="full"``)."""
    if attention_mask is None or bool(attention_mask.all()):
        return None, None
    am = attention_mask.bool()
    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(~am, 1)
    return am[:, None, None, :] & am[:, None, :, None], positions


class DreamConfig(Qwen2Config):
    """Dream's ``config.json`` (Qwen2's fields plus ``mask_token_id``)."""

    model_type = "Dream"

    def __init__(self, mask_token_id: int = 151666, **kwargs):
        if kwargs.get("use_sliding_window"):
            raise MroError("Dream config use_sliding_window=true is not supported by mro's native Dream; load "
                           "the checkpoint with its own code (remote_code: true)")
        super().__init__(**kwargs)
        self.mask_token_id = mask_token_id


class DreamModel(NativeLM, Qwen2PreTrainedModel):
    """Dream under its published class name and weight names; ``forward`` takes what the remote
    code takes (``attention_mask``: ``"full"``, ``[B, L]`` or ``[B, 1, L, L]``; ``position_ids``)
    and returns next-position ``logits``, unshifted."""

    config_class = DreamConfig
    _tied_weights_keys = ["lm_head.weight"]
    shifted = True

    def __init__(self, config: DreamConfig):
        super().__init__(config)
        self.model = Qwen2Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.n_heads, self.n_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.rotary = getattr(self.model, "rotary_emb", None) or Qwen2RotaryEmbedding(config=config)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def get_output_embeddings(self):
        return self.lm_head

    # -- NativeLM hooks ------------------------------------------------------------------------
    def _layers(self):
        return self.model.layers

    def _parts(self, layer) -> LayerParts:
        a = layer.self_attn
        return LayerParts(layer.input_layernorm, a.q_proj, a.k_proj, a.v_proj, a.o_proj,
                          layer.post_attention_layernorm, layer.mlp)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.embed_tokens(ids)

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.norm(x)

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        return self.lm_head(h)

    def _rope_dtype(self, dtype: torch.dtype) -> torch.dtype:
        return dtype

    def _inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
        mask, positions = padded_inputs(attention_mask)
        if positions is None:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        return mask, positions

    def forward(self, input_ids: torch.Tensor, attention_mask=None, position_ids: torch.Tensor | None = None,
                **unused) -> MaskedLMOutput:
        """Next-position logits ``[B, L, V]`` (``logits[:, i]`` predicts position ``i + 1``)."""
        mask = attention_mask
        if isinstance(mask, str) or mask is None or bool(mask.all()):
            mask = None
        elif mask.dim() == 2:
            mask, _ = padded_inputs(mask)
        else:
            mask = mask.bool()
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        hidden, _, _ = self.hidden_window(input_ids, mask, position_ids, 0, input_ids.shape[1])
        return MaskedLMOutput(logits=self._head(hidden))

    @classmethod
    def load_tokenizer(cls, name: str, hub: dict):
        """The tokenizer without remote code: Dream's ``DreamTokenizer`` is Qwen2's byte-level BPE
        (``vocab.json`` + ``merges.txt``), so when ``AutoTokenizer`` cannot name the class without
        running remote code, ``Qwen2TokenizerFast`` reads the same files."""
        from transformers import AutoTokenizer, Qwen2TokenizerFast

        try:
            return AutoTokenizer.from_pretrained(name, trust_remote_code=False, **hub)
        except (ValueError, OSError, KeyError):
            return Qwen2TokenizerFast.from_pretrained(name, **hub)
