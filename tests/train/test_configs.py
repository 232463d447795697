"""The shipped training and accelerate configs parse."""

from pathlib import Path

import pytest
import yaml

from mro.config import build
from mro.train.rejection import RSConfig
from mro.train.rl import RLConfig

ROOT = Path(__file__).resolve().parents[2] / "configs"
TRAIN = sorted((ROOT / "paper" / "train").glob("*.yaml"))
ACCELERATE = sorted((ROOT / "accelerate").glob("*.yaml"))


def test_there_are_configs():
    assert {p.stem for p in TRAIN} >= {"gsm8k_512_rs", "math500_512_rl", "countdown_128_rl", "sudoku_64_rl"}
    assert {p.stem for p in ACCELERATE} == {"ddp", "fsdp", "deepspeed_zero2"}


@pytest.mark.parametrize("path", TRAIN, ids=lambda p: p.stem)
def test_training_configs_build(path):
    cls = RSConfig if path.stem.endswith("_rs") else RLConfig
    cfg = build(cls, {}, str(path))
    assert cfg.model == "GSAI-ML/LLaDA-8B-Instruct" and cfg.lr == 2e-6 and cfg.dtype == "bf16"


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.stem)
def test_accelerate_configs(path):
    cfg = yaml.safe_load(path.read_text())
    assert cfg["distributed_type"] in {"MULTI_GPU", "FSDP", "DEEPSPEED"} and cfg["num_processes"] >= 2
