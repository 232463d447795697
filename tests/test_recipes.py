"""The training recipes under configs/recipes/ (benchmarks/common/recipes.py): each loads through
``mro train <verb> --config <file>``, and each still holds the settings the committed benchmark
runs (benchmarks/results/) and shipped models (src/mro/checkpoints/) were made with."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from common.recipes import RECIPES, TRAINERS, load, recipe, verb  # noqa: E402

ALL = sorted(RECIPES.glob("*/*/*.yaml"))
#: fields that name where a run wrote or what it resumed, not what it computed
PLACE = {"out", "resume"}


def test_recipes_exist():
    assert len(ALL) >= 30
    assert {verb(p) for p in ALL} == set(TRAINERS)


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(RECIPES)))
def test_cli_accepts_recipe(path, tmp_path, monkeypatch):
    """``mro train <verb> --config <file>`` builds the recipe's config and hands it to the trainer."""
    import importlib

    from mro.cli import main

    module, _, fn = TRAINERS[verb(path)]
    seen = []
    monkeypatch.setattr(importlib.import_module(module), fn, lambda cfg: seen.append(cfg) or tmp_path)
    assert main(["train", verb(path), "--config", str(path), "--out", str(tmp_path / "run")]) == 0
    (cfg,) = seen
    assert cfg == load(path, out=str(tmp_path / "run"))


def _same(recorded: dict, cfg, skip=()) -> list[str]:
    """Fields of ``cfg`` that differ from a run's recorded config (fields both know)."""
    from mro.config import to_dict

    now = to_dict(cfg)
    shared = set(recorded) & set(now) - PLACE - set(skip)
    assert len(shared) >= 10, "too few shared fields to compare"
    return sorted(k for k in shared if recorded[k] != now[k])


RUNS = [(bench, task, run) for bench, task in (("train_sudoku", "sudoku"), ("train_countdown_rl", "countdown"))
        for run in sorted((REPO / "benchmarks" / "results" / bench / "runs").glob("*/run.json"))]


@pytest.mark.parametrize("bench,task,run", RUNS, ids=lambda x: x.parent.name if isinstance(x, Path) else x)
def test_recipe_made_committed_run(bench, task, run):
    """Recipe + the benchmark's overrides (seed; model for an arm that starts from another) = run.json."""
    recorded = json.loads(run.read_text())
    arm, seed = run.parent.name.rsplit("-s", 1)
    starts_elsewhere = "-then-" in arm  # its model is another run's kept model
    cfg = load(recipe(task, arm), seed=int(seed), out=recorded["out"])
    assert _same(recorded, cfg, skip={"model"} if starts_elsewhere else ()) == []


TRIALS = sorted((REPO / "benchmarks" / "results" / "train_countdown" / "runs").glob("*/train_config.json"))
SHIPPED = {"countdown-tiny": ("countdown", "chain-d128-bf16-2t"), "countdown-ar-tiny": ("countdown", "countdown-ar-tiny"),
           "sudoku-ar-tiny": ("sudoku", "sudoku-ar-tiny"), "sudoku-tiny": ("sudoku", "sudoku-tiny"),
           "sudoku-tiny-rs": ("sudoku", "rs-12c"), "countdown-tiny-rs": ("countdown", "rs-20"),
           "sudoku-tiny-rl": ("sudoku", "rs-12c-then-rl-t1")}


@pytest.mark.parametrize("settings", TRIALS, ids=lambda p: p.parent.name)
def test_recipe_made_committed_trial(settings):
    recorded = json.loads(settings.read_text())
    assert _same(recorded, load(recipe("countdown", settings.parent.name))) == []


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_recipe_made_shipped_model(name):
    """Each shipped model's settings equal its recipe's, and its card names the recipe."""
    folder = REPO / "src" / "mro" / "checkpoints" / name
    recorded = json.loads((folder / "train_config.json").read_text())
    path = recipe(*SHIPPED[name])
    # threads change speed only (sudoku-tiny resumed with one thread); sudoku-tiny-rl's recorded model is
    # the benchmark run that was shipped as sudoku-tiny-rs, its recipe names sudoku-tiny-rs
    assert _same(recorded, load(path, **({"seed": recorded["seed"]} if "seed" in recorded else {})),
                 skip={"threads", "model"}) == []
    assert str(path.relative_to(REPO)) in (folder / "README.md").read_text()
