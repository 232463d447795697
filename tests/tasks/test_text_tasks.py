"""Text benchmarks gsm8k, math500, gpqa: data files, hub fallback, generator, scoring."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402

datasets = pytest.importorskip("datasets")

from mro.errors import MroError  # noqa: E402
from mro.tasks import get_task, task_names  # noqa: E402
from mro.tasks.gpqa import GPQATask  # noqa: E402

GPQA_ROWS = [
    {"Record ID": f"rec{i}", "Question": f"Which option is number {i}?", "Correct Answer": f"right {i}",
     "Incorrect Answer 1": f"wrong {i}a", "Incorrect Answer 2": f"wrong {i}b",
     "Incorrect Answer 3": f"wrong {i}c"}
    for i in range(8)
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_registered():
    assert {"gsm8k", "math500", "gpqa"} <= set(task_names())


def test_gsm8k_jsonl(tmp_path):
    path = _jsonl(tmp_path / "gsm.jsonl", [
        {"question": "How many?", "answer": "Add them: 1,000 + 80 = 1,080.\n#### 1,080"},
        {"question": "And now?", "answer": "7"},
    ])
    task = get_task("gsm8k")
    examples = task.load(path)
    assert [e.answer for e in examples] == ["1080", "7"]
    assert examples[0].id == "gsm-0" and examples[0].data["solution"].endswith("#### 1,080")
    good = "<think>1000 + 80</think>\n<answer>\\boxed{1,080}</answer>"
    assert task.score(examples[0], good) == {"accuracy": 1.0, "format": 1.0}
    assert task.score(examples[0], "It is 1,079.") == {"accuracy": 0.0, "format": 0.0}


def test_missing_columns_are_named(tmp_path):
    path = _jsonl(tmp_path / "bad.jsonl", [{"question": "q", "solution": "#### 1"}])
    with pytest.raises(MroError) as err:
        get_task("gsm8k").load(path)
    message = str(err.value)
    assert "missing column(s) 'answer'" in message and "'question', 'answer'" in message
    assert "bad.jsonl" in message and "\n" not in message


def test_bad_files(tmp_path):
    with pytest.raises(MroError, match="does not exist"):
        get_task("math500").load(str(tmp_path / "none.jsonl"))
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(MroError, match="unknown data format '.txt'"):
        get_task("math500").load(str(tmp_path / "data.txt"))
    path = _jsonl(tmp_path / "gsm.jsonl", [{"question": "q", "answer": "no number"}])
    with pytest.raises(MroError, match="row 0: answer 'no number' has no number"):
        get_task("gsm8k").load(path)


def test_math500_parquet_and_csv(tmp_path):
    rows = [{"problem": "What is 1/2 as a decimal?", "answer": "\\frac{1}{2}", "solution": "...",
             "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "math.parquet"))
    datasets.Dataset.from_list(rows).to_csv(str(tmp_path / "math.csv"), index=False)
    task = get_task("math500")
    for name in ("math.parquet", "math.csv"):
        (ex,) = task.load(str(tmp_path / name))
        assert ex.id == "test/prealgebra/1.json" and ex.answer == "\\frac{1}{2}"
        assert ex.data["level"] == 1
    assert task.score(ex, "<think>half</think><answer>0.5</answer>") == {"accuracy": 1.0, "format": 1.0}
    assert task.extract("<answer>\\boxed{\\frac{1}{3}}</answer>") == "\\frac{1}{3}"
    assert task.extract("<answer>0.5</answer>") == "0.5"


def test_gpqa_choices_shuffled_with_a_fixed_seed(tmp_path):
    path = _jsonl(tmp_path / "gpqa_diamond.jsonl", GPQA_ROWS)
    first, again = GPQATask().load(path), get_task("gpqa").load(path)
    assert [e.answer for e in first] == [e.answer for e in again]
    assert len({e.answer for e in first}) > 1  # the correct choice is not always A
    for ex, row in zip(first, GPQA_ROWS):
        assert ex.id == row["Record ID"]
        assert f"{ex.answer}) {row['Correct Answer']}\n" in ex.question + "\n"
        assert sorted(ex.data["choices"]) == sorted(row[k] for k in row if "Answer" in k)
    other = GPQATask(choice_seed=1).load(path)
    assert [e.answer for e in other] != [e.answer for e in first]
    ex = first[0]
    assert get_task("gpqa").score(ex, f"<think>...</think><answer>{ex.answer}</answer>")["accuracy"] == 1.0
    wrong = "ABCD".replace(ex.answer, "")[0]
    assert get_task("gpqa").score(ex, f"The answer is ({wrong}).")["accuracy"] == 0.0
    with pytest.raises(MroError, match="unknown gpqa subset 'extended'"):
        GPQATask(subset="extended")
    assert GPQATask(subset="main").hub == ("Idavidrein/gpqa", "gpqa_main", "train")


def test_no_generator_and_no_tiny_layout():
    for name in ("math500", "gpqa"):
        with pytest.raises(MroError, match=f"{name} has no generator: load a data file"):
            get_task(name).generate(3, 0)
    with pytest.raises(MroError, match="no tiny-model layout"):
        get_task("gsm8k").tiny_input(None, None)


def test_hub_unreachable_says_to_pass_a_local_file(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(MroError) as err:
        get_task("gsm8k").load_hub()
    message = str(err.value)
    assert message.startswith("cannot load openai/gsm8k (main) split 'test' from the Hugging Face hub")
    assert "pass the local file" in message and "\n" not in message


def test_gsm8k_generator_from_reasoning_gym():
    pytest.importorskip("reasoning_gym")
    task = get_task("gsm8k")
    test, train = task.generate(6, seed=1), task.generate(6, seed=1, split="train")
    assert [e.question for e in test] == [e.question for e in task.generate(6, seed=1)]
    assert not {e.question for e in test} & {e.question for e in train}
    for ex in test:
        assert ex.data["solution"].rstrip().endswith(f"#### {ex.answer}")
        assert task.score(ex, ex.data["solution"])["accuracy"] == 1.0


def test_vote_and_format_hooks_of_the_quality_reward():
    math = get_task("math500")
    assert math.same_answer("\\frac{1}{2}", "0.5") and not math.same_answer("\\frac{1}{2}", "0.25")
    assert not math.same_answer(None, "1")
    gsm = get_task("gsm8k")
    assert gsm.same_answer(gsm.extract("#### 1,080"), gsm.extract("\\boxed{1080.00}"))
    for task in (math, gsm, get_task("gpqa")):
        assert task.format_score("<think>x</think>\n<answer>1</answer>") == 1.0
        assert task.format_score("just 1") == 0.0
