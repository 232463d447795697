"""Shared fixtures: tiny randomly initialised models (no downloads, no shipped weights)."""

import os

import pytest
import torch

from mro.models.tiny import TinyDLM

# tests never reach a hub: no network here, and none is needed
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model() -> TinyDLM:
    torch.manual_seed(1234)
    model = TinyDLM.create(name="random-tiny", d_model=32, n_layers=2, n_heads=2, d_ff=64)
    model.module.eval()
    return model
