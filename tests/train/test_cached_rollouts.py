"""Training-time decodes with the KV cache (docs/method.md section 7): the RS collection and the RL rollouts
decode with ``--cache``; RL recomputes the log-probabilities without it and logs the gap."""

import json

import pytest

from mro.train.rejection import RSConfig, train_rs
from mro.train.rl import RLConfig, train_rl
from mro.train.rs_data import read_dataset
from tests.train.conftest import save_tiny

RL = dict(prompts=4, rollouts=2, steps=[4], block_length=8, temperature=1.0, updates=2, val_n=4, val_every=2,
          val_steps=[4], rewards="tv", threads=1, progress=False, device="cpu")
RS = dict(problems=8, collect_batch=4, collect_steps=4, block_length=8, k=2, updates=2, batch_size=4, val_n=4,
          val_every=2, val_steps=[4], rewards="tv,q", threads=1, progress=False, device="cpu", keep="all")


@pytest.fixture(scope="module")
def two_layer_dir(tmp_path_factory):
    """Two layers: a cached step's logits differ from the full forward's (one layer: the cache is exact)."""
    return save_tiny(tmp_path_factory.mktemp("two-layer"), n_layers=2, seed=1)


def log_rows(out):
    return [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]


def test_rl_logs_the_gap_between_cached_rollouts_and_recomputed_logprobs(tmp_path, two_layer_dir):
    gaps = {}
    for cache in ("none", "dual"):
        out = tmp_path / cache
        train_rl(RLConfig(**RL, model=str(two_layer_dir), cache=cache, out=str(out)))
        gaps[cache] = [r["rollout_logp_gap"] for r in log_rows(out) if "rollout_logp_gap" in r]
    assert len(gaps["none"]) == len(gaps["dual"]) == 2, gaps
    assert max(gaps["none"]) < 1e-6  # uncached rollouts: the recomputation is the sampler's own arithmetic
    assert min(gaps["dual"]) > 1e-4  # cached rollouts: the mismatch is seen (about 1e-3 on this random model)


def test_rs_collection_with_the_cache(tmp_path, model_dir, two_layer_dir):
    """On a one-layer model the cached collection keeps exactly the uncached one's trajectories;
    on a deeper one it runs and keeps well-formed rows."""
    data = {}
    for cache in ("none", "prefix"):
        out = tmp_path / cache
        train_rs(RSConfig(**RS, model=str(model_dir), cache=cache, out=str(out)))
        data[cache] = [{k: r[k] for k in ("id", "tokens", "commit_step")} for r in read_dataset(out / "rs_data.jsonl")]
    assert data["prefix"] == data["none"] and len(data["none"]) == 8
    out = tmp_path / "dual-two-layer"
    train_rs(RSConfig(**RS, model=str(two_layer_dir), cache="dual", out=str(out)))
    rows = read_dataset(out / "rs_data.jsonl")
    assert len(rows) == 8 and all(max(r["commit_step"]) < r["steps"] for r in rows)


def test_a_model_without_a_cache_is_refused_before_the_run_starts(tmp_path):
    """A transformers masked LM (BERT) cannot cache: --cache prefix is one line and leaves no run folder."""
    from tokenizers import Tokenizer, models
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    from mro.errors import MroError

    folder = tmp_path / "bert"
    words = {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, **{f"w{i}": i for i in range(3, 40)}}
    PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(words, unk_token="[UNK]")), unk_token="[UNK]",
                            pad_token="[PAD]", mask_token="[MASK]").save_pretrained(folder)
    BertForMaskedLM(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32)).save_pretrained(folder)
    for config, train in ((RLConfig, train_rl), (RSConfig, train_rs)):
        out = tmp_path / config.__name__
        settings = RL if config is RLConfig else RS
        with pytest.raises(MroError) as err:
            train(config(**settings, model=str(folder), cache="prefix", out=str(out)))
        assert str(err.value) == f"--cache prefix: model {folder} cannot cache keys and values; use --cache none"
        assert not out.exists()
