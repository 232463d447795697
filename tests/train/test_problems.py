"""The RS/RL problem layer refuses, when the model loads, what no decode could run: step counts
above the response positions (``mro eval``'s refusal, one wording) and a tiny model of another
task, each a one-line ``mro: error: ...`` before any collection, rollout or progress bar."""

from __future__ import annotations

import pytest

from mro.cli import main
from mro.errors import MroError
from mro.problems import check_steps

WORDING = "exceed the 16 response positions; use at most 16 steps (one token per step)"
WRONG_TASK = ("model countdown-tiny was trained on countdown, not sudoku: its layout and vocabulary do not fit; "
              "pick a sudoku model (shipped: --model sudoku-tiny) or --task countdown")


def test_check_steps_names_the_setting():
    check_steps([1, 16], 16)
    with pytest.raises(MroError) as e:
        check_steps([4, 17], 16)
    assert str(e.value) == f"steps 17 {WORDING}"
    with pytest.raises(MroError, match="^val_steps 20 exceed the 16 response positions"):
        check_steps([20], 16, "val_steps")


@pytest.mark.parametrize("args, message", [
    ("train rl --model sudoku-tiny --steps 1000 --updates 1", f"steps 1000 {WORDING}"),
    ("train rl --model sudoku-tiny --steps 3,17 --updates 1", f"steps 17 {WORDING}"),
    ("train rl --model sudoku-tiny --val-steps 2,1000 --updates 1", f"val_steps 1000 {WORDING}"),
    ("train rs --model sudoku-tiny --collect-steps 1000", f"collect_steps 1000 {WORDING}"),
    ("train rs --model sudoku-tiny --val-steps 1000", f"val_steps 1000 {WORDING}"),
    ("eval --model sudoku-tiny --steps 1000", f"steps 1000 {WORDING}"),  # the same wording
    ("train rs --model countdown-tiny --task sudoku", WRONG_TASK),
    ("train rl --model countdown-tiny --task sudoku --updates 1", WRONG_TASK),
])
def test_refused_before_anything_runs(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(args.split() + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]  # no progress bar drawn first
    assert lines == [f"mro: error: {message}"], err
    assert not out.exists()


def test_val_seed_chooses_other_validation_problems_and_none_keeps_the_old_ones():
    from mro.tasks import get_task
    from mro.train.problems import ProblemSource, problem_source
    from mro.train.rl import RLConfig

    task = get_task("sudoku")
    old = task.generate(8, seed=8_191 + 3, split="test")
    assert ProblemSource(task, {}, 3, 8).validation() == old  # unset: 8191 + seed, as every committed run used
    other = ProblemSource(task, {}, 3, 8, val_seed=77).validation()
    assert other == task.generate(8, seed=77, split="test") and other != old
    cfg = RLConfig(model="sudoku-tiny", seed=3, val_n=8, val_seed=77, out="/tmp/unused-val-seed")
    assert problem_source(task, cfg).validation() == other  # RS and RL take it from their config
