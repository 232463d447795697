"""mro demo: every decoding and every shipped trained model on one table and one chart."""

from rich.console import Console

from mro.eval.demo import TRAINED, DemoConfig, run_demo
from mro.models.load import builtin_models


def test_demo_rows_and_one_chart(tmp_path):
    console = Console(record=True, width=160)
    runs = run_demo(DemoConfig(n=4, tokens_per_step=[3, 6], out=str(tmp_path)), console=console)
    shipped = [label for label, name in TRAINED if name in builtin_models()]
    assert list(runs) == ["vanilla", "TTS-MRO", *shipped]
    for s in runs.values():
        assert [r["steps"] for r in s["results"]] == [4, 2]
    text = console.export_text()
    assert "vanilla (greedy)" in text and "TTS-MRO k=4" in text
    for label in shipped:
        assert f"{label}-trained (greedy)" in text
    assert (tmp_path / "n4-seed0" / "accuracy_vs_tokens_per_step.png").stat().st_size > 1000
