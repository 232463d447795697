"""mro eval: outputs, records, resume, bad input."""

import json

import pytest
import torch

from mro.cli import main
from mro.errors import MroError
from mro.eval.harness import EvalConfig, parse_options, run_eval
from mro.models.tiny import TinyDLM


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    TinyDLM.create(d_model=32, n_layers=1, n_heads=2, d_ff=64).save(folder)
    return str(folder)


def cfg(model_dir, out, **kw):
    base = dict(model=model_dir, task="sudoku", n=20, tokens_per_step=[1, 4], batch_size=8, out=str(out),
                progress=False, temperature=0.5)
    return EvalConfig(**(base | kw))


def test_outputs_and_records(model_dir, tmp_path):
    summary = run_eval(cfg(model_dir, tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "examples.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and {r["steps"] for r in rows} == {12, 3}
    assert [r["steps"] for r in summary["results"]] == [12, 3]
    for key in ("model", "task", "metrics", "data", "protocol", "decoding", "seed", "hardware", "date"):
        assert key in summary
    assert summary["decoding"]["temperature"] == 0.5 and summary["metrics"] == ["solved", "cell_accuracy"]
    assert (tmp_path / "accuracy_vs_steps.png").stat().st_size > 1000
    table = (tmp_path / "table.md").read_text()
    assert "solved %" in table and "cell_accuracy %" in table and "seed 0" in table
    mean = sum(r["metrics"]["cell_accuracy"] for r in rows if r["steps"] == 12) / 20
    assert summary["results"][0]["cell_accuracy"] == pytest.approx(mean)


def test_interrupted_run_resumes_without_loss(model_dir, tmp_path):
    full = run_eval(cfg(model_dir, tmp_path / "full"))
    part = tmp_path / "part"
    run_eval(cfg(model_dir, part))
    lines = (part / "examples.jsonl").read_text().splitlines()
    # keep 13 rows and a torn 14th, as a kill mid-write would leave
    (part / "examples.jsonl").write_text("\n".join(lines[:13]) + "\n" + lines[13][:20])
    resumed = run_eval(cfg(model_dir, part))
    rows = [json.loads(line) for line in (part / "examples.jsonl").read_text().splitlines()[:13]]
    assert rows == [json.loads(line) for line in lines[:13]]
    key = lambda r: (r["steps"], r["solved"], r["cell_accuracy"])
    assert [key(r) for r in resumed["results"]] == [key(r) for r in full["results"]]


def test_cli_one_line_errors(model_dir, tmp_path, capsys):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("Puzzle,Solution\n1234,5\n")
    cases = [
        (["eval", "--model", "no-such-model"], "no-such-model"),
        (["eval", "--model", model_dir, "--task", "chess"], "unknown task"),
        (["eval", "--model", model_dir, "--data", str(bad_csv)], "bad.csv:2"),
        (["eval", "--model", model_dir, "--steps", "five"], "whole number"),
        (["eval", "--model", model_dir, "--task", "countdown", "--steps", "7", "--block-length", "8"], "divisible"),
        (["eval", "--model", model_dir, "--task-options", "blanks"], "key=value"),
    ]
    for argv, words in cases:
        assert main(argv + ["--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and "\n" not in err, err


def test_parse_options():
    assert parse_options("min_blanks=8, unique=true") == {"min_blanks": 8, "unique": True}
    with pytest.raises(MroError):
        parse_options("x")


def test_output_folder_of_another_run_is_refused(model_dir, tmp_path):
    run_eval(cfg(model_dir, tmp_path, n=8))
    run_eval(cfg(model_dir, tmp_path, n=8, tokens_per_step=[2]))  # more settings: fine
    with pytest.raises(MroError, match="another temperature"):
        run_eval(cfg(model_dir, tmp_path, n=8, temperature=0.9))
