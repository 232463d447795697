"""Accuracy per forward: thresholds sweep like steps, forwards are counted per example, and the
threshold decoder with a minimum of tokens per step."""

import json

import pytest
import torch

from mro.config import changed_fields
from mro.errors import MroError
from mro.eval.harness import EvalConfig, run_eval
from mro.eval.setup import prepare_eval
from mro.sampling import DecodeConfig, generate
from mro.sampling.trajectory import PENDING
from mro.search.decoders import get_decoder


def _rows(folder):
    return [json.loads(line) for line in (folder / "examples.jsonl").read_text().splitlines()]


def test_threshold_sweep_counts_each_examples_own_forwards(tmp_path):
    s = run_eval(EvalConfig(n=12, batch_size=5, threshold=[0.5, 0.9], out=str(tmp_path / "o"), progress=False))
    assert [r["threshold"] for r in s["results"]] == [0.5, 0.9]
    rows = _rows(tmp_path / "o")
    for r in s["results"]:
        mine = [x for x in rows if x["threshold"] == r["threshold"]]
        assert len(mine) == 12 and r["nfe_per_example"] == pytest.approx(sum(x["nfe"] for x in mine) / 12)
        assert r["tokens_per_forward"] == pytest.approx(sum(x["tokens"] for x in mine) / sum(x["nfe"] for x in mine))
        # an example never costs more than its batch ran, nor fewer forwards than one per token at most
        assert all(1 <= x["nfe"] <= x["batch_steps"] and x["nfe"] <= x["tokens"] for x in mine)
    # each row costs what decoding it alone costs: decode example 3 by itself and count the steps
    setup = prepare_eval(EvalConfig(n=12, threshold=[0.9], out=str(tmp_path / "x")))
    alone = setup.run(setup.grid[0], [3], None)
    row = next(x for x in rows if x["threshold"] == 0.9 and x["index"] == 3)
    assert alone.nfe == [row["nfe"]] and alone.trajectory.steps_done == row["nfe"]
    # more thresholds resume the same folder: only the new setting is decoded
    again = run_eval(EvalConfig(n=12, batch_size=5, threshold=[0.5, 0.9, 0.7], out=str(tmp_path / "o"), progress=False))
    assert [r["threshold"] for r in again["results"]] == [0.5, 0.9, 0.7] and len(_rows(tmp_path / "o")) == 36


def test_fixed_schedule_forwards_are_its_steps(tmp_path):
    s = run_eval(EvalConfig(n=6, steps=[4], out=str(tmp_path / "o"), progress=False))
    (r,) = s["results"]
    assert r["threshold"] is None and r["nfe_per_example"] == 4
    masks = [x["tokens"] for x in _rows(tmp_path / "o")]
    assert r["tokens_per_forward"] == pytest.approx(sum(masks) / (4 * 6))


def test_min_tokens_commits_at_least_that_many_per_step(tiny_model):
    prompts = [[5, 6, 7], [8, 9]]
    plain = generate(tiny_model, prompts, DecodeConfig(gen_length=8, steps=8, threshold=1.0))
    assert plain.steps_done == 8  # threshold 1 on a random model: one token per step
    traj = generate(tiny_model, prompts, DecodeConfig(gen_length=8, steps=8, threshold=1.0, min_tokens=3))
    assert traj.steps_done == 3  # 3 + 3 + 2
    per_step = [(traj.commit_step == t).sum(-1).tolist() for t in range(3)]
    assert per_step == [[3, 3], [3, 3], [2, 2]] and not (traj.commit_step == PENDING).any()
    # a threshold every position clears still commits everything at once; min_tokens 1 is Fast-dLLM's rule
    assert generate(tiny_model, prompts, DecodeConfig(gen_length=8, steps=8, threshold=1e-9, min_tokens=3)).steps_done == 1
    one = generate(tiny_model, prompts, DecodeConfig(gen_length=8, steps=8, threshold=0.2, min_tokens=1))
    ref = generate(tiny_model, prompts, DecodeConfig(gen_length=8, steps=8, threshold=0.2))
    assert torch.equal(one.tokens, ref.tokens) and torch.equal(one.commit_step, ref.commit_step)
    res = get_decoder("vanilla")(tiny_model, prompts, None, DecodeConfig(gen_length=8, steps=8, threshold=1.0,
                                                                         min_tokens=3))
    assert res.nfe == [3.0, 3.0]


def test_min_tokens_bad_input_is_one_line(tmp_path):
    with pytest.raises(MroError, match="min_tokens must be >= 1"):
        EvalConfig(threshold=[0.9], min_tokens=0, out=str(tmp_path / "o"))
    with pytest.raises(MroError, match="give --threshold too"):
        EvalConfig(min_tokens=2, out=str(tmp_path / "o"))


def test_runs_recorded_before_a_field_existed_still_match():
    new = {"n": 5, "min_tokens": 1, "cache": "none"}
    assert changed_fields({"n": 5}, new, EvalConfig) == []
    assert changed_fields({"n": 5}, {**new, "min_tokens": 2}, EvalConfig) == ["min_tokens"]
    assert changed_fields({"n": 4, "min_tokens": 1}, new, EvalConfig) == ["n"]
