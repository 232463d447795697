"""SFT under ``accelerate launch``: two CPU processes compute what one process computes."""

import json

import pytest
import torch

pytest.importorskip("accelerate")
from safetensors.torch import load_file  # noqa: E402

from tests.train.processes import one_and_two_processes  # noqa: E402


def test_two_processes_equal_one(tmp_path):
    args = ["train", "sft", "--task", "sudoku", "--steps", "4", "--batch-size", "8", "--d-model", "32",
            "--n-layers", "1", "--n-heads", "2", "--d-ff", "64", "--warmup", "2", "--log-every", "1",
            "--save-every", "2", "--val-every", "2", "--val-n", "8", "--device", "cpu", "--progress", "false"]
    one, two = one_and_two_processes(args, tmp_path)
    wa, wb = load_file(one / "final" / "model.safetensors"), load_file(two / "final" / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k
    log = lambda p: [json.loads(x) for x in (p / "log.jsonl").read_text().splitlines()]
    ta, tb = log(one), log(two)
    assert [r["kind"] for r in ta] == [r["kind"] for r in tb]
    for ra, rb in zip(ta, tb):  # the log reports the whole batch, not one process's share
        for key in ("loss", "score"):
            if key in ra:
                assert ra[key] == pytest.approx(rb[key], abs=1e-5), key
