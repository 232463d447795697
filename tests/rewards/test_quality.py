"""Quality reward R_q, majority vote, the reward weights and their parsing (docs/method.md section 3)."""

import math

import pytest
import torch

from mro.errors import MroError
from mro.rewards import RewardWeights, majority_vote, parse_rewards, quality_reward
from mro.tasks import get_task
from mro.tasks.base import Example, last_answer_block

GRID = "1234341221434321"
OTHER = "1234342121434312"  # another valid grid (columns 3 and 4 of rows 2 and 4 swapped)
PUZZLE = "1234340021434300"  # both GRID and OTHER complete it


@pytest.fixture(scope="module")
def sudoku():
    return get_task("sudoku")


@pytest.fixture(scope="module")
def countdown():
    return get_task("countdown")


def _sudoku_example(sudoku):
    return Example(id="x", question="", answer=GRID, data={"puzzle": PUZZLE, "solution": GRID})


# --- majority vote -----------------------------------------------------------------------


def test_majority_vote_most_frequent():
    assert majority_vote(["a", "b", "b", None, "a", "b"]) == "b"


def test_majority_vote_ties_go_to_earliest_first_occurrence():
    assert majority_vote(["b", "a", "a", "b"]) == "b"
    assert majority_vote(["a", "b", "b", "a"]) == "a"
    assert majority_vote([None, "c", "d"]) == "c"
    # the same input always gives the same answer
    assert {majority_vote(["x", "y", "z", "y", "x"]) for _ in range(5)} == {"x"}


def test_majority_vote_all_none_and_empty():
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_majority_vote_groups_by_same_answer(countdown):
    answers = ["3+4", "4*3", "3 + 4", "4*3"]
    assert majority_vote(answers) == "4*3"  # plain ==: 2 vs 1 vs 1
    # countdown ignores whitespace: "3+4" and "3 + 4" form one group of 2, tied with "4*3"; first wins
    assert majority_vote(answers, same_answer=countdown.same_answer) == "3+4"


# --- R_q ---------------------------------------------------------------------------------


def test_last_answer_block():
    assert last_answer_block("a <answer>1</answer> b <answer> 2 </answer>") == " 2 "
    assert last_answer_block("no block") == "no block"


def test_quality_without_target_uses_primary_metric(sudoku):
    ex = _sudoku_example(sudoku)
    assert quality_reward(sudoku, ex, GRID) == 2.0  # solved + format
    assert quality_reward(sudoku, ex, OTHER) == 2.0  # any valid completion keeping the givens
    bad = "1234341221434322"
    assert quality_reward(sudoku, ex, bad) == 1.0  # well formed, wrong
    assert quality_reward(sudoku, ex, "1234341221430321") == 0.0  # a 0 is not a digit 1-4
    assert quality_reward(sudoku, ex, GRID, correct_weight=0.5, format_weight=0.25) == 0.75


def test_quality_with_majority_target(sudoku, countdown):
    # the target replaces the reference: OTHER is a valid solution but not the voted answer
    assert quality_reward(sudoku, None, GRID, target=GRID) == 2.0
    assert quality_reward(sudoku, None, OTHER, target=GRID) == 1.0
    assert quality_reward(countdown, None, "<answer>3 + 4</answer>", target="3+4", format_weight=0) == 1.0
    # answers agree by meaning (value and numbers used), not spelling
    assert quality_reward(countdown, None, "<answer>4+3</answer>", target="3+4", format_weight=0) == 1.0
    assert quality_reward(countdown, None, "<answer>5+2</answer>", target="3+4", format_weight=0) == 0.0


def test_quality_empty_response_is_zero(sudoku, countdown):
    ex = _sudoku_example(sudoku)
    for task, example in ((sudoku, ex), (countdown, None)):
        assert quality_reward(task, example, "", target="1") == 0.0
        assert quality_reward(task, example, None, target="1") == 0.0
    assert quality_reward(sudoku, ex, "") == 0.0


def test_quality_terms_switch_off(sudoku):
    ex = _sudoku_example(sudoku)
    bad = "1234341221434322"  # format 1, correctness 0
    assert quality_reward(sudoku, ex, bad, format_weight=0) == 0.0
    assert quality_reward(sudoku, ex, GRID, correct_weight=0, format_weight=0) == 0.0
    assert quality_reward(sudoku, ex, GRID, correct_weight=0) == 1.0


def test_quality_needs_example_or_target(sudoku):
    with pytest.raises(MroError):
        quality_reward(sudoku, None, GRID)


@pytest.mark.parametrize("weight", ["1", None, float("nan"), True])
def test_quality_bad_weight(sudoku, weight):
    with pytest.raises(MroError, match="correct_weight") as e:
        quality_reward(sudoku, None, GRID, target=GRID, correct_weight=weight)
    assert "\n" not in str(e.value)


# --- weights and combination -------------------------------------------------------------


def test_parse_rewards():
    assert parse_rewards("tv,ppl,q") == RewardWeights(1.0, 1.0, 1.0)
    w = parse_rewards("tv, q=0.5")
    assert (w.w_tv, w.w_ppl, w.w_q) == (1.0, 0.0, 0.5)


@pytest.mark.parametrize("spec", ["tv,bleu", "", "tv,tv"])
def test_parse_rewards_bad_name(spec):
    with pytest.raises(MroError) as e:
        parse_rewards(spec)
    assert "\n" not in str(e.value)
    if "bleu" in spec:
        assert "'bleu'" in str(e.value) and "tv, ppl, q" in str(e.value)


@pytest.mark.parametrize("spec", ["tv=abc", "ppl=nan", "q=inf"])
def test_parse_rewards_bad_weight(spec):
    with pytest.raises(MroError, match="w_") as e:
        parse_rewards(spec)
    assert "\n" not in str(e.value)


def test_reward_weights_reject_non_numbers():
    with pytest.raises(MroError, match="w_ppl") as e:
        RewardWeights(w_ppl="high")
    assert "\n" not in str(e.value)
