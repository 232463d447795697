"""Text benchmarks end to end through ``mro eval``: a tiny random BERT, a GSM8K-style file,
both protocols; and every shipped paper config parses into an ``EvalConfig``."""

import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast  # noqa: E402

from mro.cli import main  # noqa: E402
from mro.config import build  # noqa: E402
from mro.eval.harness import EvalConfig  # noqa: E402
from mro.tasks.protocols import PROTOCOLS, decode_settings  # noqa: E402

PAPER_CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "paper").glob("*.yaml"))
WORDS = ("the answer is a of and to in how many what each has she he they total apples eggs dollars "
         "day days week one two three four five six seven eight nine ten + - * / = . , ? ####").split()
PROBLEMS = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have?", "3 + 4 = 7\n#### 7"),
    ("A hen lays 2 eggs a day. How many eggs in 5 days?", "2 * 5 = 10\n#### 10"),
    ("Sara had 1,200 dollars and spent 200. How many dollars are left?", "1200 - 200 = 1000\n#### 1,000"),
]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    """A randomly initialised BertForMaskedLM and a word-level tokenizer, saved as a local folder."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + WORDS + [str(d) for d in range(10)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                        mask_token="[MASK]", cls_token="[CLS]", sep_token="[SEP]")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=2048, pad_token_id=0)
    folder = tmp_path_factory.mktemp("bert")
    BertForMaskedLM(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def gsm8k_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "gsm8k_test.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in PROBLEMS))
    return path


def run(bert_dir, gsm8k_file, out, *flags):
    argv = ["eval", "--model", str(bert_dir), "--task", "gsm8k", "--data", str(gsm8k_file), "--gen-length", "16",
            "--batch-size", "2", "--out", str(out), "--progress", "false", *flags]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    return rows, json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("protocol, block, temperature", [("d1", 16, 0.0), ("mro", 8, 0.25)])
def test_protocol_end_to_end(bert_dir, gsm8k_file, tmp_path, capsys, protocol, block, temperature):
    rows, summary = run(bert_dir, gsm8k_file, tmp_path, "--protocol", protocol)
    capsys.readouterr()
    # defaults from the protocol: steps = gen_length / 2; block 32 (d1, capped at 16) or 8 (mro gsm8k)
    assert (block, temperature) == tuple(decode_settings(protocol, "gsm8k", 16)[k]
                                         for k in ("block_length", "temperature"))
    assert summary["protocol"] == protocol and summary["task"] == "gsm8k"
    assert summary["decoding"]["gen_length"] == 16
    assert summary["decoding"]["block_length"] == block
    assert summary["decoding"]["temperature"] == temperature
    assert [r["steps"] for r in summary["results"]] == [8]
    assert summary["results"][0]["n"] == 3 and summary["metrics"] == ["accuracy", "format"]
    assert summary["model"]["name"] == str(bert_dir) and summary["model"]["dtype"] == "float32"
    assert summary["config"]["temperature"] is None and summary["config"]["block_length"] is None
    assert [(r["steps"], r["index"]) for r in rows] == [(8, 0), (8, 1), (8, 2)]
    assert [r["answer"] for r in rows] == ["7", "10", "1000"]
    for r in rows:
        assert r["nfe"] == 8 and set(r["metrics"]) == {"accuracy", "format"}
        assert isinstance(r["response"], str)
    for name in ("table.md", "accuracy_vs_steps.png", "eval_config.json"):
        assert (tmp_path / name).is_file()
    assert f"protocol `{protocol}`" in (tmp_path / "table.md").read_text()


def test_explicit_settings_override_the_protocol(bert_dir, gsm8k_file, tmp_path, capsys):
    _, summary = run(bert_dir, gsm8k_file, tmp_path, "--protocol", "mro", "--steps", "4", "--block-length", "16",
                     "--temperature", "0")
    capsys.readouterr()
    assert summary["protocol"] == "mro"
    assert (summary["decoding"]["block_length"], summary["decoding"]["temperature"]) == (16, 0.0)
    assert [r["steps"] for r in summary["results"]] == [4]


def test_protocol_needs_gen_length(bert_dir, gsm8k_file, tmp_path, capsys):
    argv = ["eval", "--model", str(bert_dir), "--task", "gsm8k", "--data", str(gsm8k_file), "--protocol", "d1",
            "--out", str(tmp_path), "--progress", "false"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "needs --gen-length" in err and "\n" not in err


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.stem)
def test_paper_config_parses(path, tmp_path):
    """Every shipped config is a valid EvalConfig whose settings are its protocol's defaults."""
    cfg = build(EvalConfig, {"model": str(tmp_path / "model"), "data": str(tmp_path / "data.jsonl")},
                config_file=str(path))
    task, length, protocol = path.stem.split("_")
    assert (cfg.task, cfg.gen_length, cfg.protocol) == (task, int(length), protocol)
    settings = decode_settings(protocol, task, cfg.gen_length)
    assert cfg.steps == [settings["steps"]] == [cfg.gen_length // 2]
    assert cfg.block_length == settings["block_length"]
    assert cfg.temperature == settings["temperature"] == PROTOCOLS[protocol].temperature
    assert cfg.n is None and cfg.dtype == "bf16" and cfg.decode == "vanilla"


def test_there_are_paper_configs():
    assert len(PAPER_CONFIGS) >= 20
    assert {p.stem.rsplit("_", 1)[1] for p in PAPER_CONFIGS} == {"d1", "mro"}
