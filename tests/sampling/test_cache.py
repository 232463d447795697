"""Block-wise KV caching (prefix, dual) against the uncached sampler.

Exactly equal to ``none`` (same tokens, same per-step log-probabilities):
- one step per block: every step is a block's first, whose full forward fills the cache;
- a one-layer model: its keys and values depend only on each position's own token, and the
  positions a cached step reads from the cache (prompt, finished blocks, and for ``dual`` the
  suffix) have not changed since the block started, so the cache is exact.
Otherwise (deeper models, several steps per block) the cache is Fast-dLLM's approximation:
checked for agreement of the committed tokens on a trained model.
"""

import pytest
import torch

from mro.errors import MroError
from mro.models import load_model
from mro.models.tiny import TinyDLM
from mro.sampling import PENDING, DecodeConfig, denoise, generate, start
from mro.tasks import get_task
from mro.tasks.base import tiny_batch

CACHED = ("prefix", "dual")


def prompts(n, seed=0, lo=2, hi=6):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(5, 40, (int(torch.randint(lo, hi, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


def decode(model, cache, seed=0, **kw):
    cfg = DecodeConfig(cache=cache, **kw)
    return generate(model, prompts(5), cfg, generator=torch.Generator().manual_seed(seed))


def assert_same(a, b):
    assert torch.equal(a.tokens, b.tokens)
    assert torch.equal(a.commit_step, b.commit_step)
    assert torch.allclose(a.logprob, b.logprob, atol=1e-6, equal_nan=True)
    assert torch.allclose(a.confidence, b.confidence, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("cache", CACHED)
def test_window_equals_the_full_forward_with_a_fresh_cache(tiny_model, cache):
    x = start(tiny_model, prompts(4), gen_length=16).tokens
    x[:, -10:] = torch.randint(5, 40, (4, 10))  # some response tokens, some masks
    attn = (x != tiny_model.pad_token_id).long()
    full, kv = tiny_model.logits_and_cache(x, attn)
    assert torch.allclose(full, tiny_model.logits(x, attn), atol=1e-6)
    lo, hi = x.shape[1] - 12, x.shape[1] - 8
    end = x.shape[1] if cache == "prefix" else hi
    win = tiny_model.window_logits(x, attn, kv, lo, end, logits_end=hi)
    assert win.shape == (4, hi - lo, tiny_model.vocab_size)
    assert torch.allclose(win, full[:, lo:hi], atol=1e-5)


@pytest.mark.parametrize("cache", CACHED)
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_one_step_per_block_equals_none(tiny_model, cache, temperature):
    kw = dict(gen_length=16, steps=4, block_length=4, temperature=temperature)
    assert_same(decode(tiny_model, cache, **kw), decode(tiny_model, "none", **kw))


@pytest.mark.parametrize("cache", CACHED)
@pytest.mark.parametrize("kw", [
    dict(gen_length=16, steps=8, block_length=4),
    dict(gen_length=16, steps=16, block_length=8, temperature=0.7),
    dict(gen_length=16, steps=4, block_length=16, temperature=1.0, remasking="random"),
    dict(gen_length=16, steps=16, block_length=4, threshold=0.2, temperature=0.5),
    dict(gen_length=12, steps=6, block_length=4, cfg_scale=1.5),
])
def test_one_layer_model_equals_none(one_layer_model, cache, kw):
    assert_same(decode(one_layer_model, cache, **kw), decode(one_layer_model, "none", **kw))


@pytest.mark.parametrize("cache", CACHED)
def test_resuming_carries_the_cache(tiny_model, cache):
    """3 steps then the rest equals one run (the second call continues with the block's cache)."""
    cfg = DecodeConfig(gen_length=16, steps=8, block_length=8, temperature=0.6, cache=cache)
    traj = start(tiny_model, prompts(3), gen_length=16)
    one = denoise(tiny_model, traj, cfg, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    half = denoise(tiny_model, traj, cfg, num_steps=3, generator=g)
    assert half.cache is not None and half.cache.lo == traj.prompt_length
    assert_same(denoise(tiny_model, half, cfg, generator=g), one)


@pytest.mark.parametrize("cache", CACHED)
@pytest.mark.parametrize("cfg_scale", [0.0, 1.5])
def test_copies_share_the_cache_fill(tiny_model, counting, cache, cfg_scale):
    """k copies of a row decoded with replicas=k: the block's first forward runs once per row, and
    the result is that of decoding the copies without sharing (guidance: twice the rows)."""
    k, n, f = 3, 2, 2 if cfg_scale else 1
    cfg = DecodeConfig(gen_length=16, steps=8, block_length=8, temperature=0.9, cache=cache, cfg_scale=cfg_scale)
    base = denoise(tiny_model, start(tiny_model, prompts(n), gen_length=16), cfg, num_steps=2,
                   generator=torch.Generator().manual_seed(1))
    greedy = torch.arange(n * k) % k == 0
    counted = counting(tiny_model)
    shared = denoise(counted, base.repeat_interleave(k), cfg, num_steps=4, replicas=k, greedy_rows=greedy,
                     generator=torch.Generator().manual_seed(2))
    plain = denoise(tiny_model, base.repeat_interleave(k), cfg, num_steps=4, greedy_rows=greedy,
                    generator=torch.Generator().manual_seed(2))
    assert_same(shared, plain)
    # steps 2, 3: windows (the first one per run); steps 4 (block 2 starts), 5: a fill per row, a window
    assert counted.full_rows == f * n * k
    assert counted.window_rows == f * (n + n * k + n * k)


@pytest.mark.parametrize("cache", CACHED)
def test_trajectory_is_well_formed_under_threshold_decoding(tiny_model, cache):
    cfg = DecodeConfig(gen_length=16, steps=16, block_length=4, threshold=0.05, temperature=0.5, cache=cache)
    seen = []
    traj = generate(tiny_model, prompts(4), cfg, hooks=[lambda info: seen.append(info.state.clone())],
                    generator=torch.Generator().manual_seed(0))
    assert traj.done and traj.cache is None
    assert bool((traj.commit_step != PENDING).all()) and int(traj.commit_step.max()) < traj.steps_done
    assert bool(torch.isfinite(traj.logprob).all()) and bool((traj.logprob <= 0).all())
    for t, state in enumerate(seen):
        assert torch.equal(traj.state(t + 1), state)
    # blocks in order: a position's block is never opened before an earlier block is full
    first_step = traj.commit_step.view(4, 4, 4).amin(-1).amin(0)
    last_step = traj.commit_step.view(4, 4, 4).amax(-1).amax(0)
    assert bool((first_step[1:] > last_step[:-1]).all())


def test_trained_model_commits_nearly_the_same_tokens():
    """sudoku-tiny with blocks shorter than the response: the cached decodes agree with the uncached
    one on nearly every committed token and solve as many puzzles within a few."""
    model = load_model("sudoku-tiny")
    task = get_task("sudoku")
    examples = task.generate(64, seed=3, split="test")
    ps, rs = tiny_batch(task, examples, model.tokenizer)
    runs = {}
    for cache in ("none",) + CACHED:
        cfg = DecodeConfig(gen_length=task.tiny_gen_length, steps=8, block_length=4, cache=cache)
        runs[cache] = generate(model, ps, cfg, responses=rs)
    masked = runs["none"].commit_step >= 0
    for cache in CACHED:
        agree = (runs[cache].response == runs["none"].response)[masked].float().mean()
        assert agree >= 0.95, (cache, float(agree))


def test_refusals_are_one_line(tiny_model, counting):
    with pytest.raises(MroError, match="unknown cache 'full'; choose from none, prefix, dual"):
        DecodeConfig(cache="full")

    class NoCache(counting):
        supports_kv_cache = False

        def logits_and_cache(self, x, attention_mask=None):
            raise AssertionError("not reached")

    with pytest.raises(MroError) as err:
        generate(NoCache(tiny_model), prompts(1), DecodeConfig(cache="dual"))
    assert "cannot cache keys and values; use --cache none" in str(err.value) and "\n" not in str(err.value)
    causal = TinyDLM.create(name="causal", d_model=16, n_layers=1, n_heads=2, d_ff=16, causal=True)
    assert not causal.supports_kv_cache
    with pytest.raises(MroError, match="cannot cache"):
        generate(causal, prompts(1), DecodeConfig(cache="prefix"))


def test_a_masked_lm_without_a_cache_is_refused_in_one_line():
    """A transformers masked LM (BERT) has no bidirectional KV cache: --cache dual is one line."""
    from tokenizers import Tokenizer, models
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    from mro.models.hf import HFDiffusionLM

    words = {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, **{f"w{i}": i for i in range(3, 40)}}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(words, unk_token="[UNK]")),
                                  unk_token="[UNK]", pad_token="[PAD]", mask_token="[MASK]")
    cfg = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    bert = HFDiffusionLM.from_module(BertForMaskedLM(cfg).eval(), tok, name="tiny-bert")
    assert not bert.supports_kv_cache
    with pytest.raises(MroError) as err:
        generate(bert, [[5, 6]], DecodeConfig(gen_length=4, steps=2, cache="dual"))
    assert str(err.value) == "--cache dual: model tiny-bert cannot cache keys and values; use --cache none"


@pytest.mark.parametrize("arch", ["llada", "dream"])
def test_native_models_decode_with_the_cache(arch):
    """Native LLaDA and Dream (random, float64, left-padded): one step per block equals none exactly;
    with one layer every schedule does (Dream's window starts a position early: its logits are shifted)."""
    from mro.models.dream import DREAM_7B_CONFIG
    from mro.models.llada import LLADA_8B_CONFIG
    from mro.models.native import random_model

    def build(layers):
        if arch == "llada":
            cfg = {**LLADA_8B_CONFIG, "d_model": 32, "n_heads": 4, "n_kv_heads": 2, "n_layers": layers,
                   "mlp_hidden_size": 48, "vocab_size": 60, "embedding_size": 64, "mask_token_id": 63,
                   "eos_token_id": 61, "pad_token_id": 62, "max_sequence_length": 64}
        else:
            cfg = {**DREAM_7B_CONFIG, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": layers,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64, "mask_token_id": 63,
                   "pad_token_id": 62, "bos_token_id": 61, "eos_token_id": 61, "max_position_embeddings": 64}
        return random_model(cfg, seed=3, dtype=torch.float64)

    for layers, kw in ((2, dict(gen_length=16, steps=4, block_length=4, temperature=0.7)),
                       (1, dict(gen_length=16, steps=8, block_length=4)),
                       (1, dict(gen_length=16, steps=16, block_length=8, threshold=0.1, temperature=0.5))):
        model = build(layers)
        for cache in CACHED:
            assert_same(decode(model, cache, **kw), decode(model, "none", **kw))


@pytest.mark.parametrize("cache", CACHED)
@pytest.mark.parametrize("kw", [
    dict(gen_length=16, steps=16, block_length=8),
    dict(gen_length=16, steps=8, block_length=4, temperature=0.7),
    dict(gen_length=16, steps=16, block_length=4, threshold=0.2, temperature=0.5),
    dict(gen_length=12, steps=6, block_length=4, cfg_scale=1.5),
])
def test_refresh_every_step_equals_none(tiny_model, cache, kw):
    """cache_refresh 1 refills the cache with a full forward at every step: the two-layer model's
    decode (where Fast-dLLM's cache is approximate) equals the uncached one."""
    assert_same(decode(tiny_model, cache, cache_refresh=1, **kw), decode(tiny_model, "none", **kw))


@pytest.mark.parametrize("cache", CACHED)
@pytest.mark.parametrize("refresh, full_per_block", [(0, 1), (1, 8), (2, 4), (3, 3), (8, 1), (20, 1)])
def test_refresh_runs_a_full_forward_every_r_steps(tiny_model, counting, cache, refresh, full_per_block):
    """8 steps per block: full forwards at the block's steps 0, r, 2r, ...; the other steps are windows,
    and the forwards per example (one per step) do not change."""
    counted = counting(tiny_model)
    n, cfg = 3, DecodeConfig(gen_length=16, steps=16, block_length=8, cache=cache, cache_refresh=refresh)
    traj = generate(counted, prompts(n), cfg)
    assert traj.steps_done == 16
    assert counted.full_rows == n * 2 * full_per_block
    assert counted.window_rows == n * (16 - 2 * full_per_block)
    # resuming mid-block keeps counting from the last fill (steps 0, 2, 4, 6 of each block at r = 2)
    if refresh == 2:
        counted = counting(tiny_model)
        half = denoise(counted, start(tiny_model, prompts(n), gen_length=16), cfg, num_steps=3)
        denoise(counted, half, cfg)
        assert counted.full_rows == n * 2 * full_per_block


def test_bad_cache_refresh_is_one_line():
    for bad in (-1, 1.5, "2"):
        with pytest.raises(MroError) as err:
            DecodeConfig(cache="dual", cache_refresh=bad)
        assert "cache_refresh" in str(err.value) and "\n" not in str(err.value)
