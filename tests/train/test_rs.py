"""Rejection sampling: collection resumes where it stopped, fine-tuning follows the transition loss,
LoRA trains only the adapter and loads back, bad data sets are one-line errors."""

import json

import pytest
import torch

from mro.errors import MroError
from mro.train.rejection import RSConfig, train_rs, transition_batch
from mro.train.rs_data import read_dataset

QUICK = dict(problems=12, collect_batch=4, collect_steps=3, k=2, updates=4, batch_size=4, val_n=4,
             val_every=2, val_steps=[3], threads=1, progress=False, device="cpu", rewards="tv,q")



def test_collection_resumes_where_it_stopped(tmp_path, model_dir, monkeypatch):
    full = tmp_path / "full"
    train_rs(RSConfig(**QUICK, model=str(model_dir), keep="all", out=str(full)))
    rows = read_dataset(full / "rs_data.jsonl")
    assert [r["batch"] for r in rows] == [0] * 4 + [1] * 4 + [2] * 4
    assert all(len(r["tokens"]) == len(r["commit_step"]) == 16 for r in rows)
    # interrupted while decoding batch 2, with a torn line left behind
    import mro.train.rs_data as rej

    real = rej.get_decoder

    def decoder_that_dies(name):
        inner = real(name)
        calls = {"n": 0}

        def run(*a, **k):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return inner(*a, **k)
        return run

    part = tmp_path / "part"
    monkeypatch.setattr(rej, "get_decoder", decoder_that_dies)
    with pytest.raises(KeyboardInterrupt):
        train_rs(RSConfig(**QUICK, model=str(model_dir), keep="all", out=str(part)))
    monkeypatch.setattr(rej, "get_decoder", real)
    with (part / "rs_data.jsonl").open("a") as f:
        f.write('{"batch": 2, "id": "torn", "prom')
    assert len(read_dataset(part / "rs_data.jsonl")) == 8
    train_rs(RSConfig(**QUICK, model=str(model_dir), keep="all", out=str(part), resume=True))
    assert read_dataset(part / "rs_data.jsonl") == rows
    strip = lambda recs: [{k: v for k, v in r.items() if k not in ("cpu_min", "wall_min", "path")} for r in recs]
    log = lambda p: [json.loads(x) for x in (p / "log.jsonl").read_text().splitlines()]
    assert strip(log(part)) == strip(log(full))


def test_transition_targets_are_the_positions_committed_at_the_step():
    rows = [{"prompt": [3], "tokens": [5, 6, 7, 8], "commit_step": [-1, 0, 1, 2], "batch": 0},
            {"prompt": [3, 4], "tokens": [9, 10, 11, 12], "commit_step": [1, 0, 0, -1], "batch": 0}]
    g = torch.Generator().manual_seed(0)
    (s0, attn, p, final, tgt0), (s1, _, _, _, tgt1) = transition_batch(rows, 0, 1, "transition", g)
    first = [int(t.nonzero()[0]) for t in tgt0]
    assert p == 2 and attn[0].tolist() == [0, 1, 1, 1, 1, 1]
    for r, row in enumerate(rows):
        t = row["commit_step"][first[r]]
        assert tgt0[r].tolist() == [c == t for c in row["commit_step"]]
        assert tgt1[r].tolist() == [c == t + 1 for c in row["commit_step"]]
        masked = (s0[r, p:] == 1).tolist()
        assert masked == [c >= t for c in row["commit_step"]]  # the state before step t; prefilled stays
    _, _, _, _, fin = transition_batch(rows, 0, 1, "final", torch.Generator().manual_seed(0))[0]
    assert fin[0].sum() >= tgt0[0].sum()


@pytest.mark.parametrize("content, message", [
    ("", "holds no trajectories"),
    ("not json\n{}\n", "malformed RS row"),
    ('{"batch": 0, "prompt": [1], "tokens": [5, 6], "commit_step": [0]}\n{"batch": 1}\n', "malformed RS row"),
    ('{"batch": 0, "prompt": [1], "tokens": ["a"], "commit_step": [0]}\n\n', "malformed RS row"),
])
def test_bad_rs_data_sets_are_one_line_errors(tmp_path, model_dir, content, message):
    data = tmp_path / "rs.jsonl"
    data.write_text(content)
    with pytest.raises(MroError, match=message):
        train_rs(RSConfig(**QUICK, model=str(model_dir), dataset=str(data), out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()  # bad data leaves no run behind


def test_missing_dataset_and_greedy_collection_are_one_line_errors(tmp_path, model_dir):
    with pytest.raises(MroError, match="does not exist"):
        train_rs(RSConfig(**QUICK, model=str(model_dir), dataset=str(tmp_path / "nope.jsonl"), out=str(tmp_path / "r")))
    with pytest.raises(MroError, match="collect_temperature"):
        RSConfig(**QUICK, collect_temperature=0.0)
    with pytest.raises(MroError, match="lr must be"):
        RSConfig(**QUICK, lr=0.0)


def test_lora_trains_only_the_adapter_and_loads_back(tmp_path):
    pytest.importorskip("peft")
    from tests.models.test_hf import word_tokenizer
    from transformers import BertConfig, BertForMaskedLM

    from mro.models import load_model

    torch.manual_seed(0)
    tok = word_tokenizer()
    base = tmp_path / "bert"
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, pad_token_id=tok.pad_token_id, initializer_range=0.5)
    BertForMaskedLM(cfg).save_pretrained(base)
    tok.save_pretrained(base)
    before = {k: v.clone() for k, v in BertForMaskedLM.from_pretrained(base).state_dict().items()}
    ids = lambda words: tok(words, add_special_tokens=False)["input_ids"]
    rows = [{"batch": 0, "prompt": ids("what is two plus three"), "tokens": ids("the answer is five"),
             "commit_step": [0, 0, 1, 1]},
            {"batch": 0, "prompt": ids("what is one plus one"), "tokens": ids("the answer is two"),
             "commit_step": [1, 0, 0, 1]}]
    data = tmp_path / "rs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    train_rs(RSConfig(model=str(base), task="countdown", task_options="", protocol="d1", gen_length=4, dataset=str(data),
                      updates=30, batch_size=2, lr=1e-2, val_every=30, val_n=2, val_steps=[2], lora_r=8,
                      lora_targets="query,value,dense", out=str(out), threads=1, progress=False, device="cpu"))
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if r["kind"] == "train"]
    assert sum(losses[-5:]) < 0.6 * sum(losses[:5])  # the loss falls
    state = torch.load(out / "checkpoint" / "pytorch_model.bin", map_location="cpu", weights_only=True)
    lora = [k for k in state if "lora_" in k]
    assert lora
    for k, v in state.items():
        if "lora_" in k:
            continue
        name = k.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(v, before[name]), k  # the base model did not move
    assert (out / "best" / "adapter_config.json").is_file() and (out / "final" / "adapter_config.json").is_file()
    loaded = load_model(str(out / "final"))
    merged = loaded.module.state_dict()
    assert not torch.equal(merged["bert.encoder.layer.0.attention.self.query.weight"],
                           before["bert.encoder.layer.0.attention.self.query.weight"])
    assert torch.equal(merged["bert.encoder.layer.0.attention.self.key.weight"],
                       before["bert.encoder.layer.0.attention.self.key.weight"])


def test_a_run_that_cannot_start_leaves_no_folder(tmp_path, model_dir):
    from mro.cli import main

    out = tmp_path / "never"
    assert main(["train", "rs", "--dataset", str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 2
    assert main(["train", "rs", "--model", str(tmp_path / "no-model"), "--out", str(out)]) == 2
    assert main(["train", "rl", "--model", str(tmp_path / "no-model"), "--out", str(out)]) == 2
    assert not out.exists()
