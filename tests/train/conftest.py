"""Fixtures of the trainer tests."""

import pytest
import torch

from mro.models.tiny import TinyDLM


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small randomly initialised tiny model saved as a model folder."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    TinyDLM.create(d_model=32, n_layers=1, n_heads=2, d_ff=64).save(folder)
    return folder

