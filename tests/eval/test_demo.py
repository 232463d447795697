"""mro demo: every decoding and every shipped trained model on one table and one chart per task."""

from rich.console import Console

from mro.eval.demo import COUNTDOWN, SUDOKU, DemoConfig, run_demo
from mro.models.load import builtin_models


def test_demo_rows_and_one_chart_per_task(tmp_path):
    console = Console(record=True, width=160)
    out = run_demo(DemoConfig(n=4, tokens_per_step=[1, 3, 6], countdown_n=4, countdown_tokens_per_step=[1, 4, 20],
                              out=str(tmp_path)), console=console)
    shipped = builtin_models()
    assert list(out) == ["sudoku"] + (["countdown"] if COUNTDOWN.model in shipped else [])
    text = console.export_text()
    for (section, steps, folder) in ((SUDOKU, [12, 4, 2], tmp_path / "n4-seed0"),
                                     (COUNTDOWN, [20, 5, 1], tmp_path / "n4-seed0" / "countdown-n4")):
        if section.task not in out:
            continue
        runs = out[section.task]
        labels = [label for label, name in section.trained if name in shipped]
        assert list(runs) == ["vanilla", "TTS-MRO", *labels]
        for name, s in runs.items():  # TTS-MRO only where a step commits several tokens
            assert [r["steps"] for r in s["results"]] == (steps[1:] if name == "TTS-MRO" else steps)
        assert f"{section.task}: solved % vs tokens per step" in text and f"{section.task} section: " in text
        for label in labels:
            assert f"{label}-trained (greedy)" in text
        assert (folder / "accuracy_vs_tokens_per_step.png").stat().st_size > 1000
    assert "vanilla (greedy)" in text and "TTS-MRO k=4" in text
    assert "12 | -" in text  # the one-token-per-step row has no TTS-MRO decode


def test_demo_without_countdown(tmp_path):
    out = run_demo(DemoConfig(n=2, tokens_per_step=[6], tts=False, countdown=False, out=str(tmp_path)),
                   console=Console(record=True))
    assert list(out) == ["sudoku"] and list(out["sudoku"])[0] == "vanilla"


def test_countdown_section_reads_the_countdown_metric(tmp_path):
    from dataclasses import replace

    from mro.eval.demo import run_section
    from mro.models.tiny import TinyDLM

    model = TinyDLM.create(d_model=32, n_layers=1, n_heads=2, d_ff=64)
    model.task = "countdown"
    model.save(tmp_path / "cd")
    section = replace(COUNTDOWN, model=str(tmp_path / "cd"), trained=())
    console = Console(record=True, width=160)
    runs = run_section(section, DemoConfig(tts=False, out=str(tmp_path / "out")), 3, [4, 20], tmp_path / "out",
                       console)
    assert [r["steps"] for r in runs["vanilla"]["results"]] == [5, 1]
    assert "countdown: solved % vs tokens per step" in console.export_text()
    assert (tmp_path / "out" / "accuracy_vs_tokens_per_step.png").is_file()
