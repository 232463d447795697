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


@pytest.fixture(scope="session")
def one_layer_model() -> TinyDLM:
    """A one-layer tiny model in float64: its keys and values depend on each position's own token
    only, so KV-cached decoding equals uncached decoding exactly (tests/sampling/test_cache.py)."""
    torch.manual_seed(7)
    model = TinyDLM.create(name="one-layer", d_model=32, n_layers=1, n_heads=2, d_ff=64)
    model.module.double().eval()
    return model


class CountingModel:
    """Wraps a model and counts the rows of its full forwards (``logits``, ``logits_and_cache``),
    windowed forwards (``window_logits``) and single-position reads (``logits_at``)."""

    def __init__(self, model):
        self.inner, self.full_rows, self.window_rows, self.at_rows = model, 0, 0, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def logits(self, x, attention_mask=None):
        self.full_rows += x.shape[0]
        return self.inner.logits(x, attention_mask)

    def logits_and_cache(self, x, attention_mask=None):
        self.full_rows += x.shape[0]
        return self.inner.logits_and_cache(x, attention_mask)

    def window_logits(self, x, attention_mask, cache, start, end, logits_end=None):
        self.window_rows += x.shape[0]
        return self.inner.window_logits(x, attention_mask, cache, start, end, logits_end)

    def logits_at(self, x, attention_mask, positions):
        self.at_rows += x.shape[0]
        return self.inner.logits_at(x, attention_mask, positions)


@pytest.fixture(scope="session")
def counting():
    """The :class:`CountingModel` wrapper class."""
    return CountingModel
