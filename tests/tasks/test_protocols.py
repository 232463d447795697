"""Evaluation protocols d1 and mro: prompts against expected strings, decode settings,
primary metrics, and the built-in few-shot examples checked by their own tasks."""

import re

import pytest

from mro.errors import MroError
from mro.tasks import Example, get_task
from mro.tasks.checkers import math_equal
from mro.tasks.protocols import (
    PROTOCOLS,
    SHOTS,
    build_prompt,
    decode_settings,
    default_shots,
    get_protocol,
    response_prefix,
)

GSM = Example(id="g1", question="Ann has 3 apples and buys 4 more. How many apples does she have?",
              answer="7", data={})
D1_GSM8K_USER = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. Wrap the "
    "final answer in a \\boxed{}. \nRespond in the following format:\n<reasoning>\nYour reasoning here\n"
    "</reasoning>\n<answer>\n\\boxed{...}\n</answer>\n\n"
    "Ann has 3 apples and buys 4 more. How many apples does she have?"
)
MRO_GSM8K_SYSTEM = (
    "Solve the problem. First think step by step inside <think> </think>, then give only the final "
    "answer inside <answer> </answer>. The final answer is a number."
)
MRO_GSM8K_USER_ONE_SHOT = (
    "Question: What is 2 + 2?\nAnswer: <think>\n2 + 2 = 4.\n</think>\n<answer>\n4\n</answer>\n\n"
    "Question: Ann has 3 apples and buys 4 more. How many apples does she have?\nAnswer:"
)


def test_d1_prompt_is_d1s_system_prompt_in_the_user_turn():
    system, user = build_prompt("gsm8k", GSM, "d1")
    assert system is None
    assert user == D1_GSM8K_USER
    assert response_prefix("d1") == "<reasoning>"
    assert get_task("gsm8k").prompt(GSM, "d1") == (None, D1_GSM8K_USER)


def test_mro_prompt_few_shot_with_think_tags():
    shot = Example(id="s", question="What is 2 + 2?", answer="4", data={"reasoning": "2 + 2 = 4."})
    assert build_prompt("gsm8k", GSM, "mro", shots=[shot]) == (MRO_GSM8K_SYSTEM, MRO_GSM8K_USER_ONE_SHOT)
    assert response_prefix("mro") == ""
    system, user = get_task("gsm8k").prompt(GSM, "mro")  # the 4 built-in shots
    assert system == MRO_GSM8K_SYSTEM
    assert user.count("Question: ") == 5 and user.count("<think>") == 4
    assert user.startswith("Question: Tom has 3 boxes with 12 pencils in each box.")
    assert user.endswith("Question: Ann has 3 apples and buys 4 more. How many apples does she have?\nAnswer:")


def test_sudoku_and_countdown_get_text_prompts():
    sudoku = get_task("sudoku").generate(1, 0)[0]
    puzzle = sudoku.data["puzzle"]
    _, user = get_task("sudoku").prompt(sudoku, "d1")
    assert user.startswith("\nPlease solve the following 4x4 Sudoku puzzle.")
    assert user.endswith(f"</answer>\n\n\nSolve the following Sudoku puzzle: {puzzle}\n")
    _, user = get_task("sudoku").prompt(sudoku, "mro")
    grid = "\n".join(puzzle[i:i + 4] for i in range(0, 16, 4))
    assert user.endswith(f"1, 2, 3 and 4 once:\n{grid}\nAnswer:") and user.count("<answer>") == 5

    countdown = get_task("countdown").generate(1, 0)[0]
    nums, target = countdown.data["nums"], countdown.data["target"]
    _, user = get_task("countdown").prompt(countdown, "d1")
    assert user.endswith(f"</answer>\n\nNumbers: {nums}\nTarget: {target}")
    system, user = get_task("countdown").prompt(countdown, "mro")
    assert "arithmetic expression" in system
    assert user.endswith(f"Question: {countdown.question}\nAnswer:") and user.count("Question:") == 6


@pytest.mark.parametrize("protocol, task, length, expected", [
    ("d1", "gsm8k", 256, {"steps": 128, "block_length": 32, "temperature": 0.0}),
    ("d1", "sudoku", 64, {"steps": 32, "block_length": 32, "temperature": 0.0}),
    ("mro", "gsm8k", 512, {"steps": 256, "block_length": 8, "temperature": 0.25}),
    ("mro", "math500", 512, {"steps": 256, "block_length": 64, "temperature": 0.25}),
    ("mro", "gpqa", 128, {"steps": 64, "block_length": 64, "temperature": 0.25}),
    ("mro", "countdown", 128, {"steps": 64, "block_length": 64, "temperature": 0.25}),
    ("mro", "sudoku", 64, {"steps": 32, "block_length": 64, "temperature": 0.25}),
])
def test_decode_settings(protocol, task, length, expected):
    assert decode_settings(protocol, task, length) == expected


def test_decode_settings_and_protocol_errors():
    with pytest.raises(MroError, match="multiple of the block length 64"):
        decode_settings("mro", "math500", 96)
    with pytest.raises(MroError, match="unknown protocol 'lm-eval'; choose from d1, mro"):
        get_protocol("lm-eval")


def test_primary_metrics_and_shot_counts():
    d1, mro = PROTOCOLS["d1"], PROTOCOLS["mro"]
    assert d1.primary_metric("sudoku") == "cell_accuracy" and mro.primary_metric("sudoku") == "solved"
    assert d1.primary_metric("gsm8k") == mro.primary_metric("gpqa") == "accuracy"
    assert mro.primary_metric("countdown") == "correct"
    assert {t: len(default_shots(t, "mro")) for t in SHOTS} == {
        "gsm8k": 4, "math500": 4, "gpqa": 5, "countdown": 5, "sudoku": 5}
    assert all(default_shots(t, "d1") == [] for t in SHOTS)
    for task in SHOTS:  # every primary metric is one the task reports
        assert mro.primary_metric(task) in get_task(task).metrics
        assert d1.primary_metric(task) in get_task(task).metrics


def _as_response(shot: Example) -> str:
    answer = shot.data.get("answer_text", shot.answer)
    return f"<think>\n{shot.data['reasoning']}\n</think>\n<answer>\n{answer}\n</answer>"


@pytest.mark.parametrize("task_name", ["gsm8k", "gpqa", "countdown", "sudoku"])
def test_every_built_in_shot_is_correct(task_name):
    task = get_task(task_name)
    for shot in SHOTS[task_name]:
        scores = task.score(shot, _as_response(shot))
        assert scores[PROTOCOLS["mro"].primary_metric(task_name)] == 1.0, shot.id
        if "format" in scores:
            assert scores["format"] == 1.0


def test_math_shots_are_correct_and_gsm8k_reasoning_ends_on_the_answer():
    for shot in SHOTS["math500"]:
        assert math_equal(shot.answer, _as_response(shot)), shot.id
    for shot in SHOTS["gsm8k"]:
        assert re.findall(r"\d+", shot.data["reasoning"])[-1] == shot.answer


def test_sudoku_shot_reasoning_claims_match_the_solution():
    for shot in SHOTS["sudoku"]:
        puzzle, solution = shot.data["puzzle"], shot.data["solution"]
        claims = re.findall(r"r(\d)c(\d) = (\d)", shot.data["reasoning"])
        assert len(claims) == puzzle.count("0")
        for r, c, d in claims:
            cell = (int(r) - 1) * 4 + int(c) - 1
            assert puzzle[cell] == "0" and solution[cell] == d


EVAL_FIELDS = {"model", "task", "data", "n", "protocol", "gen_length", "steps", "block_length",
               "temperature", "remasking", "cfg_scale", "threshold", "batch_size", "seed", "out",
               "device", "dtype"}


def test_paper_configs_follow_their_protocol():
    from pathlib import Path

    import yaml

    files = sorted((Path(__file__).resolve().parents[2] / "configs" / "paper").glob("*.yaml"))
    assert any(f.name == "gsm8k_512_mro.yaml" for f in files)
    for file in files:
        cfg = yaml.safe_load(file.read_text())
        assert set(cfg) == EVAL_FIELDS, file.name
        assert file.stem == f"{cfg['task']}_{cfg['gen_length']}_{cfg['protocol']}"
        settings = decode_settings(cfg["protocol"], cfg["task"], cfg["gen_length"])
        assert cfg["steps"] == [settings["steps"]], file.name
        assert (cfg["block_length"], cfg["temperature"]) == (settings["block_length"], settings["temperature"])


def test_prompt_ids_go_through_the_models_encoder(tiny_model):
    from mro.tasks.protocols import prompt_ids

    class Recorder:
        def encode_prompt(self, user, system=None, prefix=""):
            self.seen = (system, user, prefix)
            return [1, 2, 3]

    model = Recorder()
    assert prompt_ids(model, get_task("gsm8k"), GSM, "d1") == [1, 2, 3]
    assert model.seen == (None, D1_GSM8K_USER, "<reasoning>")
    prompt_ids(model, "gsm8k", GSM, "mro", shots=[])
    assert model.seen == (MRO_GSM8K_SYSTEM, f"Question: {GSM.question}\nAnswer:", "")
    # the base class default encodes the text plus the prefix with the model's tokenizer
    assert tiny_model.encode_prompt("12", prefix="4") == tiny_model.tokenizer.encode("124")
