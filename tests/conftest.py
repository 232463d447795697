"""Shared fixtures: tiny randomly initialised models (no downloads, no shipped weights)."""

import pytest
import torch

from mro.models.tiny import TinyDLM


@pytest.fixture(scope="session")
def tiny_model() -> TinyDLM:
    torch.manual_seed(1234)
    model = TinyDLM.create(name="random-tiny", d_model=32, n_layers=2, n_heads=2, d_ff=64)
    model.module.eval()
    return model
