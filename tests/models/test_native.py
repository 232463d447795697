"""Native LLaDA and Dream (mro.models.llada, mro.models.dream): tiny random models in float64.

The references below restate the two architectures from the published modelling code
(LLaDA's ``modeling_llada.py``, llama block; Dream's ``modeling_dream.py``) with plain tensor
operations over a state dict under the checkpoints' weight names, so they share no code with
the implementation. One deliberate difference: LLaDA's code casts q/k to float32 for rotary
(``rope_full_precision``), which in float64 would be a downcast; the references (and mro) keep
float64 there. Norms compute in float32 as both published codes do.
"""

import json
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

transformers = pytest.importorskip("transformers")
from safetensors.torch import save_file  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from mro.cli import main  # noqa: E402
from mro.errors import MroError  # noqa: E402
from mro.models import load_model  # noqa: E402
from mro.models.dream import DREAM_7B_CONFIG, DreamModel  # noqa: E402
from mro.models.hf import HFDiffusionLM  # noqa: E402
from mro.models.llada import LLADA_8B_CONFIG, LLaDAModelLM  # noqa: E402
from mro.models.native import random_model  # noqa: E402

SPECIALS = ["<pad>", "<unk>", "<eos>", "<mask>"]
WORDS = ("the answer is a of and to in how many what each has she he total apples eggs dollars day days "
         "one two three four five six seven eight nine ten + - * / = . , ? ####").split()
VOCAB = SPECIALS + WORDS + [str(d) for d in range(10)]
PAD, EOS, MASK = 0, 2, 3
V = len(VOCAB)


def llada_config(**over) -> dict:
    """A config.json as LLaDA publishes it (its real keys), scaled down; GQA (4 heads, 2 kv heads)."""
    cfg = {**LLADA_8B_CONFIG, "architectures": ["LLaDAModelLM"],
           "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig",
                        "AutoModel": "modeling_llada.LLaDAModelLM"},
           "activation_type": "silu", "block_type": "llama", "layer_norm_type": "rms", "alibi": False,
           "rope": True, "d_model": 32, "n_heads": 4, "n_kv_heads": 2, "n_layers": 2, "mlp_hidden_size": 48,
           "vocab_size": V, "embedding_size": V + 3, "mask_token_id": MASK, "eos_token_id": EOS,
           "pad_token_id": PAD, "max_sequence_length": 128}
    cfg.update(over)
    return cfg


def dream_config(**over) -> dict:
    cfg = {**DREAM_7B_CONFIG, "architectures": ["DreamModel"],
           "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
           "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "vocab_size": V, "mask_token_id": MASK, "pad_token_id": PAD,
           "bos_token_id": EOS, "eos_token_id": EOS, "max_position_embeddings": 128}
    cfg.update(over)
    return cfg


# -- the references ---------------------------------------------------------------------------
def rms(x, w, eps):
    xf = x.to(torch.float32)
    return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def rope_tables(positions, head_dim, theta, dtype):
    """cos/sin ``[B, L, D]``: angles in float32 (both codes), halves repeated."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = positions.float()[..., None] * inv
    emb = torch.cat([freqs, freqs], -1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate(t, cos, sin):
    half = t.shape[-1] // 2
    rot = torch.cat([-t[..., half:], t[..., :half]], -1)
    return t * cos[:, None] + rot * sin[:, None]


def attention(q, k, v, allowed):
    """softmax(q k^T / sqrt(d)) v over allowed keys; a query with none gets 0 (torch's SDPA rule)."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.nan_to_num(torch.softmax(scores, -1), nan=0.0) @ v


def llada_reference(sd, cfg, ids, attention_mask=None):
    """LLaDA's llama block, bidirectional, padded keys masked, positions 0..L-1."""
    b, length = ids.shape
    heads, kv = cfg["n_heads"], cfg["n_kv_heads"]
    hd = cfg["d_model"] // heads
    x = sd["model.transformer.wte.weight"][ids]
    cos, sin = rope_tables(torch.arange(length)[None].expand(b, -1), hd, cfg["rope_theta"], x.dtype)
    allowed = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
    eps = cfg["rms_norm_eps"]
    for i in range(cfg["n_layers"]):
        p = f"model.transformer.blocks.{i}."
        h = rms(x, sd[p + "attn_norm.weight"], eps)
        q = (h @ sd[p + "q_proj.weight"].T).view(b, length, heads, hd).transpose(1, 2)
        k = (h @ sd[p + "k_proj.weight"].T).view(b, length, kv, hd).transpose(1, 2)
        v = (h @ sd[p + "v_proj.weight"].T).view(b, length, kv, hd).transpose(1, 2)
        att = attention(rotate(q, cos, sin), rotate(k, cos, sin), v, allowed)
        x = x + att.transpose(1, 2).reshape(b, length, -1) @ sd[p + "attn_out.weight"].T
        h = rms(x, sd[p + "ff_norm.weight"], eps)
        gate, up = h @ sd[p + "ff_proj.weight"].T, h @ sd[p + "up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ sd[p + "ff_out.weight"].T
    x = rms(x, sd["model.transformer.ln_f.weight"], eps)
    head = sd["model.transformer.wte.weight"] if cfg["weight_tying"] else sd["model.transformer.ff_out.weight"]
    return x @ head.T


def dream_reference(sd, cfg, ids, attention_mask=None):
    """Dream's Qwen2 stack, bidirectional; padded: [B,1,L,L] mask of real pairs, cumsum positions.
    Returns position-aligned logits (Dream's next-position logits shifted right by one)."""
    b, length = ids.shape
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg["hidden_size"] // heads
    x = sd["model.embed_tokens.weight"][ids]
    positions, allowed = torch.arange(length)[None].expand(b, -1), None
    if attention_mask is not None:
        am = attention_mask.bool()
        positions = (attention_mask.cumsum(-1) - 1).masked_fill(~am, 1)
        allowed = am[:, None, None, :] & am[:, None, :, None]
    cos, sin = rope_tables(positions, hd, cfg["rope_theta"], x.dtype)
    eps = cfg["rms_norm_eps"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, sd[p + "input_layernorm.weight"], eps)

        def proj(name, n):
            w, bias = sd[p + f"self_attn.{name}.weight"], sd[p + f"self_attn.{name}.bias"]
            return (h @ w.T + bias).view(b, length, n, hd).transpose(1, 2)

        q, k, v = proj("q_proj", heads), proj("k_proj", kv), proj("v_proj", kv)
        att = attention(rotate(q, cos, sin), rotate(k, cos, sin), v, allowed)
        x = x + att.transpose(1, 2).reshape(b, length, -1) @ sd[p + "self_attn.o_proj.weight"].T
        h = rms(x, sd[p + "post_attention_layernorm.weight"], eps)
        gate, up = h @ sd[p + "mlp.gate_proj.weight"].T, h @ sd[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ sd[p + "mlp.down_proj.weight"].T
    logits = rms(x, sd["model.norm.weight"], eps) @ sd["lm_head.weight"].T
    return torch.cat([logits[:, :1], logits[:, :-1]], 1)


REFERENCES = {"llada": (llada_config, llada_reference), "dream": (dream_config, dream_reference)}


def batch(length=12, pads=3, seed=0):
    """Two rows of random ids; the second left-padded with ``pads`` pad tokens."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, V, (2, length), generator=g)
    am = torch.ones(2, length, dtype=torch.long)
    ids[1, :pads], am[1, :pads] = PAD, 0
    return ids, am


def real(logits, am, kind):
    """Logits at the positions a real hidden state produces (Dream: also not the first real token)."""
    keep = am.bool().clone()
    if kind == "dream":
        keep[:, 1:] &= am.bool()[:, :-1]
    return logits[keep]


# -- (a) the architecture ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["llada", "dream"])
@pytest.mark.parametrize("padded", [False, True])
def test_logits_equal_the_restated_architecture(kind, padded):
    make_cfg, reference = REFERENCES[kind]
    cfg = make_cfg()
    model = random_model(cfg, seed=1, dtype=torch.float64)
    assert isinstance(model, HFDiffusionLM) and model.kind == kind and model.supports_kv_cache
    sd = {k: v.detach() for k, v in model.module.state_dict().items()}
    ids, am = batch()
    if not padded:
        am = torch.ones_like(am)
    with torch.no_grad():
        ours = model.logits(ids, am if padded else None)
    expected = reference(sd, cfg, ids, am if padded else None)
    assert ours.shape == (2, 12, cfg.get("embedding_size", V))
    torch.testing.assert_close(real(ours, am, kind), real(expected, am, kind), atol=1e-10, rtol=0)


def test_llada_options_tied_head_qkv_bias_and_multi_query():
    cfg = llada_config(weight_tying=True, embedding_size=None, n_kv_heads=None, multi_query_attention=True)
    model = random_model(cfg, seed=2, dtype=torch.float64)
    assert "model.transformer.ff_out.weight" not in model.module.state_dict()
    assert model.module.model.transformer.blocks[0].k_proj.out_features == 8  # one head of 8
    sd = model.module.state_dict()
    ids, _ = batch()
    with torch.no_grad():
        ours = model.logits(ids)
    torch.testing.assert_close(ours, llada_reference(sd, {**cfg, "n_kv_heads": 1}, ids), atol=1e-10, rtol=0)
    assert random_model(llada_config(include_qkv_bias=True)).module.model.transformer.blocks[0].q_proj.bias is not None


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_rotary_angles_stay_float32_in_a_bf16_model(kind):
    """``module.to(bf16)`` casts buffers; rotary frequencies rounded to bf16 would shift every angle."""
    make_cfg, _ = REFERENCES[kind]
    model = random_model(make_cfg(), seed=1, dtype=torch.bfloat16)
    ids, am = batch()
    with torch.no_grad():
        low = model.logits(ids, am).float()
        model.module.to(torch.float32)
        high = model.logits(ids, am)
    assert model.module.rotary.inv_freq.dtype == torch.float32
    assert (real(low, am, kind) - real(high, am, kind)).abs().max() < 0.05


def test_unsupported_llada_option_is_one_line():
    with pytest.raises(MroError, match=r"block_type='sequential'.*remote_code") as err:
        random_model(llada_config(block_type="sequential"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_logits_at_one_position_per_row_equal_the_full_logits(kind):
    model = random_model(REFERENCES[kind][0](), seed=8, dtype=torch.float64)
    ids, am = batch()
    positions = torch.tensor([0, 7])
    with torch.no_grad():
        full = model.logits(ids, am)
        torch.testing.assert_close(model.logits_at(ids, am, positions), full[torch.arange(2), positions],
                                   atol=1e-12, rtol=0)


# -- (b) the KV cache ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["llada", "dream"])
@pytest.mark.parametrize("start, end, logits_end", [(5, 8, None), (8, 12, None), (5, 12, 8), (0, 4, None)])
def test_window_with_a_fresh_cache_equals_the_full_forward(kind, start, end, logits_end):
    model = random_model(REFERENCES[kind][0](), seed=3, dtype=torch.float64)
    ids, am = batch()
    with torch.no_grad():
        full = model.logits(ids, am)
        filled, cache = model.logits_and_cache(ids, am)
        window = model.window_logits(ids, am, cache, start, end, logits_end)
    torch.testing.assert_close(filled, full, atol=1e-12, rtol=0)
    assert len(cache.keys) == 2 and cache.keys[0].shape == (2, 2, 12, 8)  # [B, kv heads, L, head_dim]
    torch.testing.assert_close(window, full[:, start:logits_end or end], atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_window_reads_its_own_tokens_and_the_cache_elsewhere(kind):
    """With one layer, every other position's keys/values depend on its own token only, so a window
    over changed tokens against a stale cache must equal the full forward of the new ids."""
    model = random_model(REFERENCES[kind][0](**({"n_layers": 1} if kind == "llada" else {"num_hidden_layers": 1})),
                         seed=4, dtype=torch.float64)
    ids, am = batch()
    new = ids.clone()
    new[:, 6:9] = MASK
    with torch.no_grad():
        _, stale = model.logits_and_cache(ids, am)
        window = model.window_logits(new, am, stale, 6, 9)
        torch.testing.assert_close(window, model.logits(new, am)[:, 6:9], atol=1e-12, rtol=0)
        assert (window - model.logits(ids, am)[:, 6:9]).abs().max() > 1e-3


def test_a_window_outside_the_sequence_or_a_foreign_cache_is_one_line():
    model = random_model(llada_config(), seed=5)
    ids, am = batch()
    _, cache = model.logits_and_cache(ids, am)
    with pytest.raises(MroError, match="does not fit"):
        model.window_logits(ids, am, cache, 8, 13)
    with pytest.raises(MroError, match="KV cache holds"):
        model.window_logits(ids[:, :10], am[:, :10], cache, 2, 4)


# -- (c) loading a checkpoint folder without remote code ----------------------------------------
def word_tokenizer():
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>",
                                   mask_token="<mask>")


def llada_weights(cfg, seed=0):
    """Random weights under LLaDA's published names (not taken from mro's module)."""
    g = torch.Generator().manual_seed(seed)
    d, hidden, rows = cfg["d_model"], cfg["mlp_hidden_size"], cfg["embedding_size"]
    kv = cfg["n_kv_heads"] * d // cfg["n_heads"]
    shapes = {"model.transformer.wte.weight": (rows, d), "model.transformer.ln_f.weight": (d,),
              "model.transformer.ff_out.weight": (rows, d)}
    for i in range(cfg["n_layers"]):
        p = f"model.transformer.blocks.{i}."
        shapes.update({p + "attn_norm.weight": (d,), p + "ff_norm.weight": (d,), p + "q_proj.weight": (d, d),
                       p + "k_proj.weight": (kv, d), p + "v_proj.weight": (kv, d), p + "attn_out.weight": (d, d),
                       p + "ff_proj.weight": (hidden, d), p + "up_proj.weight": (hidden, d),
                       p + "ff_out.weight": (d, hidden)})
    return {k: (1 + 0.1 * torch.randn(s, generator=g)) if len(s) == 1 else 0.2 * torch.randn(s, generator=g)
            for k, s in shapes.items()}


def write_folder(folder, cfg, weights, shards=1):
    """config.json + safetensors (``shards`` > 1: with model.safetensors.index.json) + tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    keys = sorted(weights)
    if shards == 1:
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    else:
        index = {}
        for s in range(shards):
            name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {k: weights[k].contiguous() for k in keys[s::shards]}
            save_file(part, str(folder / name), metadata={"format": "pt"})
            index.update({k: name for k in part})
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": index}))
    word_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llada_folder(tmp_path_factory):
    cfg = llada_config()
    return write_folder(tmp_path_factory.mktemp("llada"), cfg, llada_weights(cfg), shards=2), cfg


def test_a_llada_folder_loads_natively_without_remote_code(llada_folder):
    folder, cfg = llada_folder
    # the folder names remote code it does not contain: only a native load can succeed
    assert not any(folder.glob("*.py")) and cfg["auto_map"]
    model = load_model(str(folder), dtype="fp32")
    assert isinstance(model.module, LLaDAModelLM) and model.kind == "llada" and model.supports_kv_cache
    assert (model.mask_token_id, model.eos_token_id, model.pad_token_id) == (MASK, EOS, PAD)
    ids, am = batch()
    weights = llada_weights(cfg)
    with torch.no_grad():
        torch.testing.assert_close(real(model.logits(ids, am), am, "llada"),
                                   real(llada_reference(weights, cfg, ids, am), am, "llada"), atol=1e-4, rtol=1e-4)
    assert model.encode_prompt("what is two") == [VOCAB.index(w) for w in ("what", "is", "two")]


def test_remote_code_flag_takes_the_checkpoints_own_code(llada_folder):
    folder, _ = llada_folder
    with pytest.raises(MroError, match="cannot load model folder") as err:
        load_model(str(folder), dtype="fp32", remote_code=True)  # its configuration_llada.py is not there
    assert "\n" not in str(err.value)


def test_a_dream_folder_loads_natively_with_its_tokenizer_class_unresolvable(tmp_path):
    cfg = dream_config()
    model = random_model(cfg, seed=6)
    folder = tmp_path / "dream"
    model.module.save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**json.loads((folder / "config.json").read_text()),
                                                    "auto_map": cfg["auto_map"]}))
    tok_cfg = json.loads((folder / "tokenizer_config.json").read_text())
    tok_cfg.update(tokenizer_class="DreamTokenizer",
                   auto_map={"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]})
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    saved = json.loads((folder / "config.json").read_text())
    assert saved["model_type"] == "Dream" and saved["architectures"] == ["DreamModel"]
    loaded = load_model(str(folder), dtype="fp32")
    assert isinstance(loaded.module, DreamModel) and loaded.kind == "dream"
    assert (loaded.mask_token_id, loaded.pad_token_id) == (MASK, PAD)
    ids, am = batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded.logits(ids, am), model.logits(ids, am))
    assert loaded.tokenizer.encode("what is two", add_special_tokens=False) == [VOCAB.index(w) for w in
                                                                                ("what", "is", "two")]


# -- (d) broken folders ---------------------------------------------------------------------------
def test_a_missing_or_misshapen_weight_is_one_line(tmp_path):
    cfg = llada_config()
    weights = llada_weights(cfg)
    missing = dict(weights)
    del missing["model.transformer.blocks.1.up_proj.weight"]
    with pytest.raises(MroError, match=r"blocks\.1\.up_proj\.weight is missing") as err:
        load_model(str(write_folder(tmp_path / "missing", cfg, missing, shards=2)), dtype="fp32")
    assert "\n" not in str(err.value)
    wrong = {**weights, "model.transformer.blocks.0.k_proj.weight": torch.zeros(32, 32)}
    with pytest.raises(MroError, match=r"blocks\.0\.k_proj\.weight has shape \[32, 32\].*needs \[16, 32\]") as err:
        load_model(str(write_folder(tmp_path / "wrong", cfg, wrong)), dtype="fp32")
    assert "\n" not in str(err.value)


# -- through the CLI ----------------------------------------------------------------------------
def eval_argv(folder, tmp_path, *flags):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in [
        ("she has 3 apples and 4 more . how many apples ?", "3 + 4 = 7\n#### 7"),
        ("each day 2 eggs . how many eggs in 5 days ?", "2 * 5 = 10\n#### 10")]))
    return ["eval", "--model", str(folder), "--task", "gsm8k", "--protocol", "d1", "--data", str(data),
            "--gen-length", "8", "--steps", "4", "--block-length", "4", "--batch-size", "2",
            "--out", str(tmp_path / "out"), "--progress", "false", *flags]


@pytest.fixture(scope="module")
def dream_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dream")
    random_model(dream_config(), seed=7).module.save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind, cache", [("llada", "none"), ("llada", "dual"), ("dream", "prefix")])
def test_mro_eval_runs_on_a_native_folder(llada_folder, dream_folder, tmp_path, capsys, kind, cache):
    folder = llada_folder[0] if kind == "llada" else dream_folder
    out = tmp_path / "out"
    code = main(eval_argv(folder, tmp_path, "--cache", cache))
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["name"] == str(folder) and summary["results"][0]["n"] == 2
    rows = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["nfe"] == 4 for r in rows)


def test_mro_eval_remote_code_flag_is_one_line_when_the_code_is_absent(llada_folder, tmp_path, capsys):
    folder, _ = llada_folder
    assert main(eval_argv(folder, tmp_path, "--remote-code")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"mro: error: cannot load model folder {folder}")


REMOTE_CONFIG = '''
from transformers import PretrainedConfig


class LLaDAConfig(PretrainedConfig):
    model_type = "llada"
'''
REMOTE_MODEL = '''
import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from .configuration_llada import LLaDAConfig


class LLaDAModelLM(PreTrainedModel):
    """Stand-in remote code: position-wise logits from the embedding alone (no attention)."""

    config_class = LLaDAConfig
    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        self.model = torch.nn.Module()
        self.model.transformer = torch.nn.ModuleDict({"wte": torch.nn.Embedding(config.embedding_size, config.d_model),
                                                      "ff_out": torch.nn.Linear(config.d_model, config.embedding_size,
                                                                                bias=False)})

    def forward(self, input_ids, attention_mask=None, **kwargs):
        t = self.model.transformer
        return MaskedLMOutput(logits=t.ff_out(t.wte(input_ids)))
'''


def test_remote_code_loads_the_folders_own_code_which_cannot_cache(tmp_path, capsys):
    folder = remote_folder(tmp_path)
    cfg = llada_config()
    native = load_model(str(folder), dtype="fp32")
    remote = load_model(str(folder), dtype="fp32", remote_code=True)
    assert isinstance(native.module, LLaDAModelLM) and native.supports_kv_cache
    assert not isinstance(remote.module, LLaDAModelLM) and type(remote.module).__name__ == "LLaDAModelLM"
    assert remote.kind == "llada" and not remote.supports_kv_cache and remote.mask_token_id == MASK
    ids, _ = batch()
    w = llada_weights(cfg)
    with torch.no_grad():
        torch.testing.assert_close(remote.logits(ids), w["model.transformer.wte.weight"][ids]
                                   @ w["model.transformer.ff_out.weight"].T)
    with pytest.raises(MroError, match="cannot cache keys and values"):
        remote.logits_and_cache(ids)
    assert main(eval_argv(folder, tmp_path, "--remote-code", "--cache", "dual")) == 2
    assert "cannot cache keys and values" in capsys.readouterr().err


def remote_folder(tmp_path):
    cfg = llada_config()
    folder = write_folder(tmp_path / "remote", cfg, llada_weights(cfg))
    (folder / "configuration_llada.py").write_text(REMOTE_CONFIG)
    (folder / "modeling_llada.py").write_text(REMOTE_MODEL)
    return folder


def test_training_and_lm_eval_take_the_remote_code_flag(tmp_path):
    """``--remote-code`` reaches every loader: the trainers' (``mro train sft --remote-code``) and lm-eval's model_args."""
    from mro.train.setup import load_trainable
    from mro.train.sft import SFTConfig

    folder = remote_folder(tmp_path)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"{a} ?", "response": f"{a} {b} ."}) + "\n"
                             for a in ("one", "two") for b in ("three", "four")))
    for remote in (False, True):
        cfg = SFTConfig(model=str(folder), data=str(pairs), dtype="fp32", remote_code=remote, out=str(tmp_path / "x"))
        assert isinstance(load_trainable(cfg, torch.device("cpu")).module, LLaDAModelLM) is not remote
    out = tmp_path / "run"
    assert main(["train", "sft", "--model", str(folder), "--data", str(pairs), "--remote-code", "--steps", "2",
                 "--batch-size", "2", "--val-n", "1", "--log-every", "1", "--device", "cpu", "--dtype", "fp32",
                 "--progress", "false", "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["remote_code"] is True
    pytest.importorskip("lm_eval")
    from mro.lm_eval import MroLM

    lm = MroLM(pretrained=str(folder), task="gsm8k", dtype="fp32", remote_code=True)
    assert not isinstance(lm.model.module, LLaDAModelLM) and not lm.model.supports_kv_cache


def test_a_masked_lm_refuses_the_cache_in_one_line():
    """BERT-style attention in transformers takes no windowed cache: a clear refusal, not a wrong number."""
    from transformers import BertConfig, BertForMaskedLM

    tok = word_tokenizer()
    cfg = BertConfig(vocab_size=V, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=32, pad_token_id=PAD)
    bert = HFDiffusionLM.from_module(BertForMaskedLM(cfg), tok, name="tiny-bert")
    ids, am = batch()
    assert not bert.supports_kv_cache
    with pytest.raises(MroError, match="tiny-bert cannot cache keys and values; decode with cache none"):
        bert.logits_and_cache(ids, am)
    with pytest.raises(MroError, match="cannot cache"):
        bert.window_logits(ids, am, None, 0, 4)
