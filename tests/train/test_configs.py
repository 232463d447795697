"""The shipped training and accelerate configs parse."""

from pathlib import Path

import pytest
import yaml

from mro.config import build
from mro.train.rejection import RSConfig
from mro.train.rl import RLConfig
from mro.train.sft import SFTConfig

ROOT = Path(__file__).resolve().parents[2] / "configs"
TRAIN = sorted((ROOT / "paper" / "train").glob("*.yaml"))
ACCELERATE = sorted((ROOT / "accelerate").glob("*.yaml"))


def test_there_are_configs():
    assert {p.stem for p in TRAIN} >= {"gsm8k_512_rs", "math500_512_rl", "countdown_128_rl", "sudoku_64_rl", "s1k_sft"}
    assert {p.stem for p in ACCELERATE} == {"ddp", "fsdp", "deepspeed_zero2"}


@pytest.mark.parametrize("path", [p for p in TRAIN if not p.stem.endswith("_sft")], ids=lambda p: p.stem)
def test_training_configs_build(path):
    cls = RSConfig if path.stem.endswith("_rs") else RLConfig
    cfg = build(cls, {}, str(path))
    assert cfg.model == "GSAI-ML/LLaDA-8B-Instruct" and cfg.lr == 2e-6 and cfg.dtype == "bf16"


def test_the_s1k_sft_stage_builds():
    cfg = build(SFTConfig, {}, str(ROOT / "paper" / "train" / "s1k_sft.yaml"))
    assert cfg.model == "GSAI-ML/LLaDA-8B-Instruct" and cfg.data.endswith(".jsonl") and cfg.lora_r == 128
    assert cfg.max_length == 4096 and cfg.batch_size == 8 and cfg.micro_batch == 1 and cfg.dtype == "bf16"
    assert cfg.system_prompt.startswith("Respond in the following format:\n<reasoning>")


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.stem)
def test_accelerate_configs(path):
    cfg = yaml.safe_load(path.read_text())
    assert cfg["distributed_type"] in {"MULTI_GPU", "FSDP", "DEEPSPEED"} and cfg["num_processes"] >= 2
