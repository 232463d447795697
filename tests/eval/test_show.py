"""mro show renders a decoding in the terminal, as PNG and as HTML."""

import torch

from mro.cli import main
from mro.models.tiny import TinyDLM


def test_show_vanilla_and_tts(tmp_path, capsys):
    torch.manual_seed(0)
    TinyDLM.create(d_model=32, n_layers=1, n_heads=2, d_ff=64).save(tmp_path / "m")
    base = ["show", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "o"), "--steps", "4"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "step   0" in out and "step   4" in out
    assert (tmp_path / "o" / "trajectory_0.png").stat().st_size > 1000
    assert main(base + ["--decode", "tts-mro", "--rewards", "tv,q", "--k", "3", "--w", "2", "--temperature", "1",
                        "--index", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("segment") == 2 and "candidates" in out
    page = (tmp_path / "o" / "trajectory_2.html").read_text()
    assert "<table>" in page and "<b>" in page
