"""Per-task defaults of mro train rs|rl (mro.train.defaults): the task's recipe fills what the user
left unset, never what the user gave, and the table equals the recipes it names."""

import sys
from pathlib import Path

import pytest

from mro.train.defaults import SOURCES, TASK_DEFAULTS
from mro.train.rejection import RSConfig
from mro.train.rl import RLConfig

REPO = Path(__file__).resolve().parents[2]


def test_each_task_gets_its_own_recipe():
    sudoku, countdown = RLConfig(), RLConfig(task="countdown")
    assert sudoku.steps == [3] and countdown.steps == [5]  # countdown no longer rolls out at Sudoku's step counts
    assert countdown.val_steps == [5, 10] and countdown.temperature == 1.0 and sudoku.temperature == 2.0
    assert RSConfig().collect_steps == 12 and RSConfig(task="countdown").collect_steps == 20
    other = RLConfig(task="gsm8k", protocol="d1", gen_length=256)
    assert other.steps == TASK_DEFAULTS["rl"]["*"]["steps"] and other.rewards == "tv=0.25,q"


def test_given_values_are_kept():
    cfg = RLConfig(task="countdown", steps=[3], temperature=0.5, rewards="tv,q", shaping=True, lr=3e-5)
    assert (cfg.steps, cfg.temperature, cfg.rewards, cfg.shaping, cfg.lr) == ([3], 0.5, "tv,q", True, 3e-5)
    assert cfg.reward.rewards == "tv,q"  # the reward layer sees the filled value
    assert RSConfig(task="countdown", k=4, select="reward").search.k == 4


def test_the_table_is_the_recipes():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from common.recipes import load, recipe

    for (verb, task), name in SOURCES.items():
        cfg = load(recipe(task, name), out="/tmp/unused")
        for key, value in TASK_DEFAULTS[verb][task].items():
            assert getattr(cfg, key) == value, (verb, task, key)


@pytest.mark.parametrize("verb, cls", [("rl", RLConfig), ("rs", RSConfig)])
def test_every_task_default_field_has_a_value_for_every_task(verb, cls):
    import dataclasses

    fields = {f.name for f in dataclasses.fields(cls) if f.metadata.get("task_default")}
    for task, values in TASK_DEFAULTS[verb].items():
        assert fields <= set(values), (task, fields - set(values))
