"""Loading a model of the wrong kind is a one-line error, not a silent 0% evaluation."""

import pytest

from mro.cli import main
from mro.errors import MroError
from mro.models import load_model


def test_causal_checkpoint_is_not_a_diffusion_model():
    with pytest.raises(MroError, match="causal .* not a diffusion model") as err:
        load_model("sudoku-ar-tiny")
    assert "\n" not in str(err.value)


def test_eval_with_a_causal_model_exits_with_one_line(tmp_path, capsys):
    code = main(["eval", "--model", "sudoku-ar-tiny", "--n", "4", "--out", str(tmp_path / "out"), "--progress", "false"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("mro: error: model 'sudoku-ar-tiny' is a causal") and err.count("\n") == 1
    assert not (tmp_path / "out" / "summary.json").exists()
