"""SFT of any backend on prompt/response pairs: a tiny randomly initialised Hugging Face masked LM
with a chat template, LoRA from the CLI; the loss falls, the adapter loads back, the prompt is never
masked."""

import json

import pytest
import torch

pytest.importorskip("peft")
from transformers import BertConfig, BertForMaskedLM  # noqa: E402

from mro.cli import main  # noqa: E402
from mro.errors import MroError  # noqa: E402
from mro.models import load_model  # noqa: E402
from mro.train.loss import masked_diffusion_rows  # noqa: E402
from mro.train.pairs import encode_pairs, pair_batch, read_pairs  # noqa: E402
from tests.models.test_hf import word_tokenizer  # noqa: E402

TEMPLATE = ("{% for m in messages %}[CLS] {{ m['content'] }} [SEP] {% endfor %}"
            "{% if add_generation_prompt %}the answer is{% endif %}")
NUMBERS = "zero one two three four five six seven eight nine".split()


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    torch.manual_seed(0)
    tok = word_tokenizer(eos_token="[SEP]")
    tok.chat_template = TEMPLATE
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                     initializer_range=0.5)
    folder = tmp_path_factory.mktemp("bert")
    BertForMaskedLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    rows = [{"question": f"what is {NUMBERS[a]} plus {NUMBERS[b]}", "answer": f"{NUMBERS[a + b]} is the answer"}
            for a in range(5) for b in range(5)]
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_chat_template_eos_and_the_prompt_is_never_masked(bert_dir, pairs_file):
    model = load_model(str(bert_dir))
    tok = model.tokenizer
    pairs = read_pairs(str(pairs_file), "question", "answer")
    assert pairs[7] == ("what is one plus two", "three is the answer")
    (p, r), (p2, r2) = encode_pairs(model, [pairs[7], ("what is two plus two", "four")])
    assert p == tok("[CLS] what is one plus two [SEP] the answer is", add_special_tokens=False)["input_ids"]
    assert r == tok("three is the answer", add_special_tokens=False)["input_ids"] + [model.eos_token_id]
    tokens, maskable, attn = pair_batch([(p2, r2), (p, r)], model.pad_token_id, model.eos_token_id)
    assert tokens[0, len(p):].tolist() == r2 + [model.eos_token_id] * (len(r) - len(r2))  # padded with EOS
    assert maskable[:, :len(p)].sum() == 0 and maskable[:, len(p):].all()  # the whole response, EOS padding too
    assert attn[:, len(p):].all()
    seen = {}
    real = model.logits

    def spy(x, a=None):
        seen["x"] = x
        return real(x, a)

    model.logits = spy
    rows = masked_diffusion_rows(model, tokens, maskable, attn, generator=torch.Generator().manual_seed(0))
    assert rows.shape == (2,) and (rows >= 0).all()
    masked = seen["x"] == model.mask_token_id
    assert not masked[:, :len(p)].any() and masked.any()


def test_lora_sft_from_the_cli_learns_and_the_adapter_loads_back(tmp_path, bert_dir, pairs_file):
    out = tmp_path / "run"
    args = ["train", "sft", "--model", str(bert_dir), "--data", str(pairs_file), "--prompt-column", "question",
            "--response-column", "answer", "--lora-r", "8", "--lora-targets", "query,value,dense", "--steps", "40",
            "--batch-size", "8", "--lr", "3e-2", "--warmup", "2", "--log-every", "5", "--val-every", "20",
            "--val-n", "5", "--device", "cpu", "--progress", "false", "--threads", "1", "--out", str(out)]
    assert main(args) == 0
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if r["kind"] == "train"]
    assert sum(losses[-2:]) < 0.75 * sum(losses[:2])  # the loss falls (each line the mean of 5 steps)
    vals = [r for r in log if r["kind"] == "val"]
    assert [r["update"] for r in vals] == [0, 20, 40] and all(r["loss"] > 0 and r["score"] == -r["loss"] for r in vals)
    assert vals[-1]["loss"] < 0.6 * vals[0]["loss"]  # on the held-out pairs too
    for folder in ("best", "final"):
        assert (out / folder / "adapter_config.json").is_file()
    base = BertForMaskedLM.from_pretrained(bert_dir).state_dict()
    merged = load_model(str(out / "final")).module.state_dict()
    q, k = "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.0.attention.self.key.weight"
    assert not torch.equal(merged[q], base[q]) and torch.equal(merged[k], base[k])  # only the adapters moved
    assert main([*args[:-1], str(out), "--steps", "45", "--resume"]) == 0  # continues from its checkpoint
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["update"] for r in log if r["kind"] == "train"] == [5, 10, 15, 20, 25, 30, 35, 40, 45]


def test_parquet_pairs_read_as_jsonl(tmp_path, pairs_file):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "pairs.parquet"
    datasets.Dataset.from_list([json.loads(x) for x in pairs_file.read_text().splitlines()]).to_parquet(str(path))
    assert read_pairs(str(path), "question", "answer") == read_pairs(str(pairs_file), "question", "answer")


def test_bad_pairs_are_one_line_errors(tmp_path, bert_dir, pairs_file):
    from mro.train.sft import SFTConfig, train_sft

    with pytest.raises(MroError, match="missing column.*'prompt'"):
        read_pairs(str(pairs_file), "prompt", "answer")
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"prompt": "what", "response": ""}\n')
    with pytest.raises(MroError, match="row 1 has no text"):
        read_pairs(str(empty), "prompt", "response")
    with pytest.raises(MroError, match="give its SFT data as --data"):
        train_sft(SFTConfig(model=str(bert_dir), out=str(tmp_path / "x"), progress=False, device="cpu"))
    with pytest.raises(MroError, match="need more than val_n=256"):
        train_sft(SFTConfig(model=str(bert_dir), data=str(pairs_file), prompt_column="question",
                            response_column="answer", val_every=5, out=str(tmp_path / "y"), progress=False,
                            device="cpu"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # bad data leaves no run behind


def test_lora_sft_of_a_native_llada_folder_and_its_adapter_loads_back(tmp_path):
    from tests.models.test_native import llada_config, llada_weights, write_folder

    cfg = llada_config()
    folder = write_folder(tmp_path / "llada", cfg, llada_weights(cfg))
    words = "one two three four".split()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"{a} + {b} ?", "response": f"{a} {b} ."}) + "\n"
                             for a in words for b in words))
    out = tmp_path / "run"
    assert main(["train", "sft", "--model", str(folder), "--data", str(pairs), "--lora-r", "4",
                 "--lora-targets", "q_proj,k_proj,v_proj", "--steps", "6", "--batch-size", "4", "--lr", "1e-2",
                 "--warmup", "1", "--log-every", "3", "--device", "cpu", "--dtype", "fp32", "--progress", "false",
                 "--out", str(out)]) == 0
    losses = [r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    assert len(losses) == 2 and all(0 < x < 100 for x in losses)
    assert (out / "final" / "adapter_config.json").is_file()
    ids = torch.tensor([[4, 5, 6]])
    tuned, base = load_model(str(out / "final"), dtype="fp32").logits(ids), load_model(str(folder), dtype="fp32").logits(ids)
    assert tuned.shape == base.shape and not torch.allclose(tuned, base)  # the adapter loads back, and it moved
