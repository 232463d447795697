"""Fixtures of the trainer tests."""

import pytest
import torch

from mro.models.tiny import TinyDLM


def save_tiny(folder, n_layers: int = 1, seed: int = 0):
    """A small randomly initialised tiny model saved in ``folder``."""
    torch.manual_seed(seed)
    TinyDLM.create(d_model=32, n_layers=n_layers, n_heads=2, d_ff=64).save(folder)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small randomly initialised tiny model saved as a model folder."""
    return save_tiny(tmp_path_factory.mktemp("model"))

