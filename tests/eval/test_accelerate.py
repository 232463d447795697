"""Multi-process evaluation: ``accelerate launch`` over two CPU processes gives the rows
and the summary of a one-process run (batch j always holds the same examples and noise)."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

pytest.importorskip("accelerate")

from mro.models.tiny import TinyDLM  # noqa: E402

TIMING = ("seconds",)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(tmp_path) -> dict:
    """No inherited launcher variables, one thread per process, no user accelerate config."""
    drop = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_CONFIG_FILE")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"))
    return env


def accelerate_launch() -> list[str]:
    """``accelerate launch`` of two CPU processes on a free port.

    `--cpu` would start one process (accelerate shards CPU runs only through MPI); `--multi_gpu`
    starts two through torchrun, and `--device cpu` makes them join one gloo group.
    """
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port())]


def rows(path):
    out = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in out]


def results(summary):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in summary["results"]]


def test_two_processes_equal_one(tmp_path):
    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    TinyDLM.create(d_model=32, n_layers=1, n_heads=2, d_ff=64).save(model_dir)
    # steps 4 before 8: the merged file must follow the grid order, as one process writes it
    args = ["eval", "--model", str(model_dir), "--task", "sudoku", "--n", "18", "--temperature", "0.5",
            "--batch-size", "4", "--steps", "4,8", "--device", "cpu", "--progress", "false"]
    env = clean_env(tmp_path)
    one = subprocess.run([sys.executable, "-m", "mro", *args, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([*accelerate_launch(), "-m", "mro", *args, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert two.returncode == 0, two.stderr

    a, b = rows(tmp_path / "one" / "examples.jsonl"), rows(tmp_path / "two" / "examples.jsonl")
    assert len(a) == 2 * 18
    assert [(r["steps"], r["index"]) for r in a] == [(s, i) for s in (4, 8) for i in range(18)]
    assert b == a  # same rows (responses, metrics, nfe, ...), same order
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if "rank" in p.name or p.suffix == ".tmp") == []

    sa = json.loads((tmp_path / "one" / "summary.json").read_text())
    sb = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert results(sb) == results(sa) and [r["n"] for r in sa["results"]] == [18, 18]
    assert (sa["hardware"]["processes"], sb["hardware"]["processes"]) == (1, 2)
    for key in ("model", "task", "data", "n_examples", "protocol", "decode", "decoding", "seed"):
        assert sb[key] == sa[key], key
    assert {k: v for k, v in sb["config"].items() if k != "out"} == {
        k: v for k, v in sa["config"].items() if k != "out"}
