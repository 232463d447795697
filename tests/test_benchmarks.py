"""The training benchmarks' shared helpers (benchmarks/common/) and their reports: rebuilt from
the committed results (``--report-only``), the tables come out as committed."""

from __future__ import annotations

import gzip
import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from common import ship  # noqa: E402
from common.runs import Bench, compress_log, finished, provenance, read_log, record, started  # noqa: E402


def test_finished_run_keeps_a_compressed_log(tmp_path):
    rows = [{"kind": "train", "update": 1, "loss": 0.5}, {"kind": "val", "update": 1, "score": 0.25}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "run.json").write_text("{}")
    assert started(tmp_path) and finished(tmp_path) is None
    record(tmp_path, {"arm": "x", "solved": {"2": 50.0}})
    assert not (tmp_path / "log.jsonl").exists()
    assert json.loads(gzip.decompress((tmp_path / "log.jsonl.gz").read_bytes()).splitlines()[0]) == rows[0]
    assert read_log(tmp_path) == rows
    assert finished(tmp_path) == {"arm": "x", "solved": {"2": 50.0}}
    before = (tmp_path / "log.jsonl.gz").read_bytes()
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    compress_log(tmp_path)
    assert (tmp_path / "log.jsonl.gz").read_bytes() == before  # no timestamp in the gzip bytes


def test_report_only_keeps_the_runs_hardware(tmp_path):
    saved = {"hardware": {"processor": "then"}, "date": "2026-01-01"}
    (tmp_path / "results.json").write_text(json.dumps(saved))
    assert provenance(tmp_path / "results.json", report_only=True) == ({"processor": "then"}, "2026-01-01")
    hw, date = provenance(tmp_path / "results.json", report_only=False)
    assert date != "2026-01-01" and "processor" in hw


def test_install_copies_the_model_files_only(tmp_path, monkeypatch):
    run, model = tmp_path / "run", tmp_path / "run" / "best"
    model.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (model / name).write_text(name)
    (model / "selection.json").write_text("{}")
    (run / "run.json").write_text('{"lr": 1}')
    (run / "log.jsonl.gz").write_bytes(gzip.compress(b'{"kind": "val", "update": 0}\n', mtime=0))
    monkeypatch.setattr(ship, "CHECKPOINTS", tmp_path / "checkpoints")
    dst = ship.install(model, "tiny-x", run, "# tiny-x\n")
    assert sorted(p.name for p in dst.iterdir()) == ["README.md", "config.json", "model.safetensors", "tokenizer.json",
                                                    "train_config.json", "train_log.txt"]
    assert (dst / "train_log.txt").read_text() == '{"kind": "val", "update": 0}\n'
    assert json.loads((dst / "train_config.json").read_text()) == {"lr": 1}


@pytest.mark.parametrize("name", ["train_sudoku", "train_countdown_rl", "train_countdown"])
def test_report_only_reproduces_the_committed_tables(name, tmp_path):
    """What ``python benchmarks/<name>.py --report-only`` writes equals the committed results.md."""
    committed = REPO / "benchmarks" / "results" / name
    root = tmp_path / name
    shutil.copytree(committed, root, ignore=shutil.ignore_patterns("*.png"))
    bench = importlib.import_module(name)
    b = Bench(root)
    if name == "train_sudoku":
        bench.report(b, bench.finished_runs(b), json.loads((root / "tts.json").read_text()), report_only=True)
    elif name == "train_countdown_rl":
        bench.report(b, bench.finished_runs(b), report_only=True)
    else:
        bench.report(b, bench.trials(b), report_only=True)
    tables = lambda text: [line for line in text.splitlines() if line.startswith("|")]  # noqa: E731
    assert tables((root / "results.md").read_text()) == tables((committed / "results.md").read_text())
    assert len(tables((committed / "results.md").read_text())) > 5
    assert (root / "curves.png").stat().st_size > 10_000  # the curves redraw from the committed logs
