"""The built-in tiny model: save/load round trip, shipped checkpoints, bad folders."""

import pytest
import torch

from mro.errors import MroError
from mro.models import builtin_models, load_model
from mro.models.tiny import TinyDLM


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    m = TinyDLM.create(d_model=32, n_layers=1, n_heads=2, d_ff=64)
    m.module.eval()
    m.save(tmp_path)
    back = load_model(str(tmp_path))
    x = torch.randint(4, 20, (2, 9))
    assert torch.equal(m.logits(x), back.logits(x))
    assert back.mask_token_id == m.tokenizer.mask_token_id


def test_shipped_checkpoints_load():
    assert {"sudoku-tiny", "sudoku-ar-tiny"} <= set(builtin_models())
    m = load_model("sudoku-tiny")
    assert m.describe()["parameters"] > 500_000 and not m.module.cfg.causal


def test_bad_folders(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "something-else"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(MroError, match="not a tiny mro model|cannot load"):
        TinyDLM.load(tmp_path)
    with pytest.raises(MroError, match="missing model file"):
        TinyDLM.load(tmp_path / "nope")


def test_causal_model_does_not_look_ahead():
    torch.manual_seed(0)
    m = TinyDLM.create(d_model=32, n_layers=2, n_heads=2, d_ff=64, causal=True)
    a = torch.tensor([[3, 5, 6, 7, 8]])
    b = a.clone()
    b[0, -1] = 9
    assert torch.allclose(m.logits(a)[0, :-1], m.logits(b)[0, :-1])


@pytest.mark.parametrize("causal", [False, True])
def test_logits_at_equals_the_full_forward(causal):
    torch.manual_seed(1)
    m = TinyDLM.create(d_model=32, n_layers=2, n_heads=2, d_ff=64, causal=causal)
    x = torch.randint(4, 20, (5, 9))
    attn = torch.ones_like(x)
    attn[1, :3] = 0  # left padding
    attn[2, -2:] = 0 if causal else 1  # right padding (causal scorers)
    pos = torch.tensor([0, 4, 5, 8, 3])
    full = m.logits(x, attn)[torch.arange(5), pos]
    assert torch.allclose(m.logits_at(x, attn, pos), full, atol=1e-5)
    assert torch.allclose(m.logits_at(x, None, pos), m.logits(x)[torch.arange(5), pos], atol=1e-5)
