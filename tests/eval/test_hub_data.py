"""``mro eval --data hub:ID[:CONFIG[:SPLIT]]``: hub data sets from the command line."""

import pytest

import mro.tasks.text as text
from mro.errors import MroError
from mro.eval.harness import EvalConfig, load_examples, parse_hub_data
from mro.tasks import get_task


@pytest.mark.parametrize("spec, parsed", [
    ("hub:openai/gsm8k:main:test", ("openai/gsm8k", "main", "test")),
    ("hub:openai/gsm8k", ("openai/gsm8k", None, None)),
    ("hub:me/data::validation", ("me/data", None, "validation")),
])
def test_parse_hub_data(spec, parsed):
    assert parse_hub_data(spec) == parsed


@pytest.mark.parametrize("spec", ["hub:", "hub::main", "hub:a:b:c:d"])
def test_bad_hub_spec_is_one_line(spec):
    with pytest.raises(MroError, match="hub:ID") as err:
        parse_hub_data(spec)
    assert "\n" not in str(err.value)


def test_eval_reads_a_hub_data_set(monkeypatch, tmp_path):
    calls = []

    def fake_hub_rows(hub_id, config, split, columns, task):
        calls.append((hub_id, config, split))
        return [{"question": f"q{i}", "answer": f"work\n#### {i}"} for i in range(5)]

    monkeypatch.setattr(text, "hub_rows", fake_hub_rows)
    task = get_task("gsm8k")
    cfg = EvalConfig(task="gsm8k", data="hub:openai/gsm8k:main:test", n=3, protocol="d1", out=str(tmp_path / "o"))
    examples, source = load_examples(task, cfg)
    assert calls == [("openai/gsm8k", "main", "test")]
    assert len(examples) == 3 and examples[2].answer in ("2", 2) and source == "hub:openai/gsm8k:main:test"
    # another data set with the task's columns, its default split
    load_examples(task, EvalConfig(task="gsm8k", data="hub:me/gsm-copy", n=3, protocol="d1", out=str(tmp_path / "o")))
    assert calls[-1] == ("me/gsm-copy", None, "test")


def test_task_without_hub_data_is_one_line(tmp_path):
    cfg = EvalConfig(task="sudoku", data="hub:someone/sudoku", out=str(tmp_path / "o"))
    with pytest.raises(MroError, match="reads no hub data sets"):
        load_examples(get_task("sudoku"), cfg)
