"""``--model mro`` under lm-evaluation-harness (mro.lm_eval): the same numbers as ``mro eval`` on the
same problems, prompts and decoding; prompts, stop sequences and ``max_gen_toks`` on a Hugging Face
masked LM with a chat template; the Monte-Carlo likelihood."""

import json
import logging
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

lm_eval = pytest.importorskip("lm_eval")  # the lm_eval extra (in the test extra)
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.api.registry import get_model  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from mro.config import build  # noqa: E402
from mro.errors import MroError  # noqa: E402
from mro.eval.harness import EvalConfig, run_eval  # noqa: E402
from mro.eval.records import read_jsonl  # noqa: E402
from mro.lm_eval import MroLM, mask_counts_and_sets, mc_loglikelihood  # noqa: E402
from mro.lm_eval import main as mro_lm_eval_main  # noqa: E402
from mro.models import load_model  # noqa: E402
from mro.sampling import DecodeConfig, generate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT / "configs" / "lm_eval" / "tasks"
DATA = TASKS / "mro_countdown" / "countdown_test.jsonl"


@pytest.fixture(scope="module")
def task_manager():
    return TaskManager(include_path=str(TASKS), include_defaults=False)  # only the local tasks: fast


def mro_eval(tmp_path, n, batch_size, **settings):
    """``mro eval`` on the first ``n`` problems of the local task's file: (accuracy, responses)."""
    cfg = build(EvalConfig, {"model": "countdown-tiny", "task": "countdown", "data": str(DATA), "n": n,
                             "batch_size": batch_size, "out": str(tmp_path / "mro-eval"), "progress": False,
                             **settings})
    summary = run_eval(cfg)
    rows = read_jsonl(tmp_path / "mro-eval" / "examples.jsonl")
    return summary["results"][0]["correct"], [r["response"] for r in sorted(rows, key=lambda r: r["index"])]


def lm_eval_run(task_manager, n, batch_size, **settings):
    """lm-eval's Python API with ``--model mro`` on the same problems: (accuracy, samples)."""
    args = ",".join(f"{k}={v}" for k, v in {"pretrained": "countdown-tiny", "batch_size": batch_size,
                                             **settings}.items())
    out = lm_eval.simple_evaluate(model="mro", model_args=args, tasks=["mro_countdown_tiny"],
                                  task_manager=task_manager, limit=n, log_samples=True)
    samples = sorted(out["samples"]["mro_countdown_tiny"], key=lambda s: s["doc_id"])
    return out["results"]["mro_countdown_tiny"]["correct,none"], samples


def test_local_task_data_file(tmp_path, monkeypatch):
    """The local tasks read their problems with mro's Countdown loader, from $MRO_COUNTDOWN_DATA when set."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mro_countdown_utils", TASKS / "mro_countdown" / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    data = tmp_path / "d1.jsonl"
    data.write_text('{"input": "44,19,35", "output": "98"}\n{"nums": [3, 4, 12], "target": 41}\n')
    monkeypatch.setenv("MRO_COUNTDOWN_DATA", str(data))
    rows = utils.load()["test"]
    assert [(r["nums"], r["target"]) for r in rows] == [([44, 19, 35], 98), ([3, 4, 12], 41)]
    assert utils.doc_to_text(rows[1]) == "3,4,12>41:"
    assert utils.process_results(rows[1], ["12*3=36,36+4=40"]) == {"correct": 0.0}
    assert utils.process_results(rows[0], ["44+19+35"]) == {"correct": 1.0}


def test_importing_registers_the_model():
    assert get_model("mro") is MroLM


@pytest.mark.parametrize("n,batch_size,settings", [
    (16, 8, {}),                                     # vanilla, one token per step
    (16, 8, {"threshold": 0.9}),                     # Fast-dLLM confidence threshold
    (4, 2, {"decode": "tts-mro", "k": 2}),           # the search, sampling at T=0.5: same batches, same noise
    (8, 4, {"cache": "dual", "block_length": 4, "steps": 10}),  # Fast-dLLM's dual KV cache, 5 blocks
], ids=["vanilla", "threshold", "tts-mro", "dual-cache"])
def test_countdown_accuracy_is_mro_evals(tmp_path, task_manager, n, batch_size, settings):
    accuracy, responses = mro_eval(tmp_path, n, batch_size, **settings)
    lm_accuracy, samples = lm_eval_run(task_manager, n, batch_size, **settings)
    assert lm_accuracy == accuracy
    assert [s["resps"][0][0] for s in samples] == responses  # row by row, not only on average
    stats = samples[0]["arguments"][0][1]["mro"]  # trajectory statistics in the per-sample log
    assert stats["decode"] == settings.get("decode", "vanilla") and stats["gen_length"] == 20
    assert stats["forwards"] > 0 and stats["tokens_per_forward"] == pytest.approx(20 / stats["forwards"])
    if not settings:
        assert stats["forwards"] == 20 and stats["steps"] == 20


def test_command_line_on_two_processes_matches_mro_eval(tmp_path):
    """``accelerate launch -m mro.lm_eval`` (lm-eval's command line) on two CPU processes: each
    decodes its share of the problems, and together they give ``mro eval``'s rows."""
    from tests.eval.test_accelerate import accelerate_launch, clean_env

    accuracy, responses = mro_eval(tmp_path, 8, 4)
    cmd = [*accelerate_launch(), "-m", "mro.lm_eval", "--model", "mro", "--model_args",
           "pretrained=countdown-tiny,batch_size=4", "--device", "cpu", "--include_path", str(TASKS),
           "--tasks", "mro_countdown_tiny", "--limit", "8", "--output_path", str(tmp_path / "lm"), "--log_samples"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=tmp_path, env=clean_env(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "generate_until: 4 requests on process 0 of 2" in done.stderr  # each process decodes its half
    assert "generate_until: 4 requests on process 1 of 2" in done.stderr
    (results,) = (tmp_path / "lm").rglob("results_*.json")
    assert json.loads(results.read_text())["results"]["mro_countdown_tiny"]["correct,none"] == accuracy
    (samples,) = (tmp_path / "lm").rglob("samples_mro_countdown_tiny_*.jsonl")
    rows = sorted((json.loads(line) for line in samples.read_text().splitlines()), key=lambda s: s["doc_id"])
    assert [r["resps"][0][0] for r in rows] == responses
    assert all(r["arguments"]["gen_args_0"]["arg_1"]["mro"]["forwards"] == 20 for r in rows)


def test_command_line_error_is_one_line(monkeypatch, capsys):
    import lm_eval.__main__

    def run():  # what lm-eval's command line does with --model mro --model_args ...
        MroLM.create_from_arg_string("pretrained=countdown-tiny,decode=nope", {"batch_size": 1, "device": "cpu"})
    monkeypatch.setattr(lm_eval.__main__, "cli_evaluate", run)
    with pytest.raises(SystemExit) as stop:
        mro_lm_eval_main(["--model", "mro"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mro-lm-eval: error:") and "'nope'" in err[0]


@pytest.mark.parametrize("args,message", [
    ({"rewards": "tv", "ppl": ""}, r"joins its items with \+"),
    ({"out": "x"}, "not an lm-eval setting"),
    ({"model": "countdown-tiny"}, "pretrained=NAME"),
    ({"steps": "4+8"}, "one setting"),
    ({"mc_sampling": "sobol"}, "mc_sampling"),
])
def test_bad_model_args(args, message):
    with pytest.raises(MroError, match=message):
        MroLM(pretrained="countdown-tiny", **args)


def test_list_values_join_with_plus():
    lm = MroLM.create_from_arg_string("pretrained=countdown-tiny,decode=tts-mro,rewards=tv+q",
                                      {"batch_size": "auto", "device": "cuda:0"})
    assert lm.cfg.rewards == "tv,q" and lm.cfg.batch_size == EvalConfig.batch_size
    assert lm.model.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


# -- a Hugging Face masked LM with a chat template ---------------------------------------------------

@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = "zero one two three four five six seven eight nine plus minus is the answer what".split()
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]",
                                               mask_token="[MASK]", cls_token="[CLS]", sep_token="[SEP]")
    tok.chat_template = ("{% for m in messages %}[CLS] {{ m['content'] }} [SEP] {% endfor %}"
                         "{% if add_generation_prompt %}the answer is{% endif %}")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=512, pad_token_id=0)
    folder = tmp_path_factory.mktemp("bert-chat")
    transformers.BertForMaskedLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def request(context, **gen_kwargs):
    return Instance("generate_until", {}, (context, gen_kwargs), 0)


def test_hf_chat_template_stop_sequences_and_max_gen_toks(bert_folder, caplog):
    lm = MroLM(pretrained=bert_folder, block_length=4, steps=4, batch_size=2)
    context = "what is two plus two"
    prompt = lm.model.encode_prompt(context)
    tokens = lm.model.tokenizer.convert_ids_to_tokens(prompt)
    assert tokens[0] == "[CLS]" and tokens[-3:] == ["the", "answer", "is"]  # the chat template was applied
    with caplog.at_level(logging.INFO, logger="lm_eval.mro"):
        raw = lm.generate_until([request(context, until=[], max_gen_toks=6), request("one", until=[], max_gen_toks=6)])
    assert "max_gen_toks 6 decodes 8 response tokens (whole blocks of 4)" in caplog.text
    # the same prompt and settings decoded directly: max_gen_toks 6 -> 8 response tokens, 4 blocks... of 4 steps
    traj = generate(lm.model, [prompt, lm.model.encode_prompt("one")], DecodeConfig(gen_length=8, steps=4,
                                                                                   block_length=4))
    assert raw[0] == lm.model.tokenizer.decode(traj.response[0].tolist(), skip_special_tokens=True)
    words = raw[0].split()
    assert len(words) == 8
    stop = words[3]
    reqs = [request(context, until=[stop], max_gen_toks=6)]
    (cut,) = lm.generate_until(reqs)
    assert cut == raw[0][:raw[0].find(stop)] and stop not in cut
    stats = reqs[0].args[1]["mro"]
    assert stats["prompt_tokens"] == len(prompt) and stats["gen_length"] == 8 and stats["stopped"]
    assert stats["forwards"] == 4 and stats["tokens_per_forward"] == 2.0


def test_d1_text_task_matches_mro_eval(bert_folder, tmp_path, task_manager):
    """A text model under the d1 protocol: the same prompts (mro's protocol code, chat template,
    ``<reasoning>`` prefix), decoding and rows as ``mro eval --protocol d1``."""
    cfg = build(EvalConfig, {"model": bert_folder, "task": "countdown", "data": str(DATA), "n": 4, "protocol": "d1",
                             "gen_length": 8, "batch_size": 2, "out": str(tmp_path / "d1"), "progress": False})
    summary = run_eval(cfg)
    rows = sorted(read_jsonl(tmp_path / "d1" / "examples.jsonl"), key=lambda r: r["index"])
    out = lm_eval.simple_evaluate(model="mro", model_args={"pretrained": bert_folder, "protocol": "d1",
                                                          "task": "countdown", "gen_length": 8, "batch_size": 2},
                                  tasks=["mro_countdown_d1"], task_manager=task_manager, limit=4, log_samples=True)
    samples = sorted(out["samples"]["mro_countdown_d1"], key=lambda s: s["doc_id"])
    assert out["results"]["mro_countdown_d1"]["correct,none"] == summary["results"][0]["correct"]
    assert [s["resps"][0][0] for s in samples] == [r["response"] for r in rows]
    stats = samples[0]["arguments"][0][1]["mro"]
    assert (stats["steps"], stats["block_length"], stats["gen_length"]) == (4, 8, 8)  # d1: steps = length / 2


def test_apply_chat_template_contexts_are_not_templated_twice(bert_folder):
    lm = MroLM(pretrained=bert_folder)
    text = lm.apply_chat_template([{"role": "user", "content": "two plus two"}])
    assert text.startswith("[CLS] two plus two [SEP]")
    ids = lm.prompt_ids(text)
    assert lm.model.tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "two", "plus", "two", "[SEP]", "the",
                                                             "answer", "is"]


# -- loglikelihood --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def countdown_tiny():
    return load_model("countdown-tiny")


@pytest.mark.parametrize("sampling", ["even", "antithetic"])
def test_mask_samples(sampling):
    masks = mask_counts_and_sets(7, 64, sampling, torch.Generator().manual_seed(0), "cpu")
    counts = masks.sum(-1)
    assert masks.shape == (64, 7) and counts.min() >= 1 and counts.max() <= 7
    if sampling == "antithetic":  # each pair together masks every token, counts l and L + 1 - l
        assert (masks[0::2] | masks[1::2]).all() and ((counts[0::2] + counts[1::2]) == 8).all()
    else:  # evenly spaced counts cover 1..L equally
        assert sorted(set(counts.tolist())) == list(range(1, 8))


def test_one_token_likelihood_is_exact(countdown_tiny):
    tok = countdown_tiny.tokenizer
    prompt, answer = [tok.bos_token_id] + tok.encode("66,75,6>54:"), tok.encode("7")
    with torch.no_grad():
        exact = countdown_tiny.logits(torch.tensor([prompt + [tok.mask_token_id]]))[0, -1].log_softmax(-1)[answer[0]]
    est = mc_loglikelihood(countdown_tiny, prompt, answer, 8, 4, "even", 0.0, torch.Generator().manual_seed(0))
    assert est == pytest.approx(float(exact), abs=1e-5)


@pytest.mark.parametrize("sampling", ["even", "antithetic"])
def test_spread_falls_with_mc_num(countdown_tiny, sampling):
    tok = countdown_tiny.tokenizer
    prompt, answer = [tok.bos_token_id] + tok.encode("66,75,6>54:"), tok.encode("75-66=9,9*6=54")

    def spread(mc_num):
        return statistics.stdev(mc_loglikelihood(countdown_tiny, prompt, answer, mc_num, 64, sampling, 0.0,
                                                 torch.Generator().manual_seed(s)) for s in range(8))
    few, many = spread(4), spread(64)
    assert many < few / 2 and math.isfinite(many)


def test_correct_choice_scores_above_wrong_ones(task_manager):
    out = lm_eval.simple_evaluate(model="mro", model_args="pretrained=countdown-tiny,mc_num=8",
                                  tasks=["mro_countdown_tiny_choice"], task_manager=task_manager, limit=6,
                                  log_samples=True)
    assert out["results"]["mro_countdown_tiny_choice"]["acc,none"] == 1.0
    for s in out["samples"]["mro_countdown_tiny_choice"]:
        scores = [r[0][0] for r in s["resps"]]
        assert scores[0] > max(scores[1:])


def test_rolling_likelihood(countdown_tiny):
    lm = MroLM(pretrained="countdown-tiny", mc_num=16)
    good, bad = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (t,), 0)
                                          for t in ("3,4,12>41:12*3=36,36+4=40", "3,4,12>41:,,,,,,,,,,,,,,,,")])
    assert math.isfinite(good) and good > bad
    with pytest.raises(MroError, match="does not chunk"):
        lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("1" * 100,), 0)])


@pytest.mark.parametrize("name,shots", [("gsm8k_256", 4), ("math500_256", 4), ("gpqa_diamond_256", 5)])
def test_paper_configs(name, shots):
    """The paper's runs as lm-eval configs: lm-eval reads them, their model_args are mro eval's, and
    their tasks are lm-eval's own."""
    import re

    from lm_eval.config.evaluate_config import EvaluatorConfig

    from mro.lm_eval import settings_from_model_args

    raw = EvaluatorConfig.load_yaml_config(ROOT / "configs" / "lm_eval" / "paper" / f"{name}.yaml")
    assert raw["model"] == "mro" and raw["num_fewshot"] == shots
    cfg = settings_from_model_args(raw["model_args"])
    assert cfg.model == "GSAI-ML/LLaDA-8B-Instruct" and cfg.temperature == 0.25
    assert cfg.steps == [cfg.gen_length // 2] and raw["gen_kwargs"]["max_gen_toks"] == cfg.gen_length
    tasks_dir = Path(lm_eval.__file__).parent / "tasks"
    for task in raw["tasks"]:
        pattern = re.compile(rf"^task: {re.escape(task)}\s*$", re.M)
        assert any(pattern.search(p.read_text(errors="ignore")) for p in tasks_dir.rglob("*.yaml")), task
