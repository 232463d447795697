"""mro analyze correlation: scores, statistics and outputs on a random tiny model."""

import json

import numpy as np
import pytest
import torch

from mro.errors import MroError
from mro.eval.correlation import CorrelationConfig, analyze, bootstrap_ci, quantile_accuracy, run_correlation
from mro.models.tiny import TinyDLM


@pytest.fixture(scope="module")
def dlm_and_ar(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models")
    TinyDLM.create(d_model=32, n_layers=1, n_heads=2, d_ff=64).save(folder / "dlm")
    TinyDLM.create(d_model=32, n_layers=1, n_heads=2, d_ff=64, causal=True).save(folder / "ar")
    return str(folder / "dlm"), str(folder / "ar")


def test_run_writes_table_plot_and_resumes(dlm_and_ar, tmp_path):
    dlm, ar = dlm_and_ar
    cfg = CorrelationConfig(model=dlm, ppl_scorer=ar, n=12, seeds=3, batch_size=5, bootstrap=50, out=str(tmp_path))
    result = run_correlation(cfg)
    assert result["n_responses"] == 36 and len(result["per_seed"]) == 3
    for name in ("intra", "inter"):
        assert name in result["pooled"] and len(result["quantiles"][name]) >= 1
    assert "Spearman(intra, correct)" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "correlation.png").stat().st_size > 1000
    again = run_correlation(cfg)  # everything already decoded: same numbers
    assert json.dumps(again["over_seeds"]) == json.dumps(result["over_seeds"])
    with pytest.raises(MroError, match="other settings"):
        run_correlation(CorrelationConfig(model=dlm, ppl_scorer=ar, n=12, seeds=3, temperature=0.9, out=str(tmp_path)))


def test_intra_score_is_the_sum_of_its_terms(dlm_and_ar, tmp_path):
    """intra = sum over steps of R_tv + R_ppl: R_tv alone is a sum of log-probabilities (< 0), R_ppl
    alone a sum of per-step rewards in [0, C/F], and together exactly their sum (the decoding and the
    verified tokens do not depend on which terms are on)."""
    dlm, ar = dlm_and_ar

    def intra(rewards):
        out = tmp_path / rewards.replace(",", "_")
        run_correlation(CorrelationConfig(model=dlm, ppl_scorer=ar, n=6, seeds=2, batch_size=6, bootstrap=20,
                                          rewards=rewards, out=str(out)))
        rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
        return {(r["seed"], r["index"]): r["intra"] for r in rows}, rows

    tv, rows = intra("tv")
    ppl, _ = intra("ppl")
    both, _ = intra("tv,ppl")
    assert all(v < 0 for v in tv.values())
    # at most 16 steps (the Sudoku layout's 16 positions), each R_ppl in [0, C/F = 1]
    assert all(0 <= v <= 16 for v in ppl.values()) and any(v > 0 for v in ppl.values())
    assert set(both) == set(tv) == set(ppl) and len(both) == 12
    for key in both:
        assert both[key] == pytest.approx(tv[key] + ppl[key], abs=1e-4)


def test_statistics():
    rng = np.random.default_rng(0)
    score = rng.normal(size=400)
    correct = (score + rng.normal(scale=0.5, size=400) > 0).astype(float)
    lo, hi = bootstrap_ci(score, correct, 200)
    assert 0.5 < lo < hi < 1.0
    bins = quantile_accuracy(score, correct)
    assert [b["bin"] for b in bins] == [1, 2, 3, 4, 5] and bins[0]["accuracy"] < bins[-1]["accuracy"]
    rows = [{"seed": i % 2, "intra": float(s), "inter": float(c), "correct": float(c)} for i, (s, c) in
            enumerate(zip(score, correct))]
    res = analyze(rows, 2, 50)
    assert res["pooled"]["inter"]["spearman"] == pytest.approx(1.0)
    assert res["over_seeds"]["accuracy"]["mean"] == pytest.approx(correct.mean(), abs=0.02)


def test_bad_settings():
    with pytest.raises(MroError, match="seeds must be >= 2"):
        CorrelationConfig(seeds=1)
    with pytest.raises(MroError, match="temperature must be > 0"):
        CorrelationConfig(temperature=0)
    with pytest.raises(MroError, match="unknown reward"):
        CorrelationConfig(rewards="tv,bleu")


def test_task_options_default_per_task():
    # sudoku's analysis draws its hard puzzles; another task gets its generator's own defaults
    assert CorrelationConfig().task_options == "min_blanks=10,max_blanks=12"
    assert CorrelationConfig(task="countdown").task_options == ""
    assert CorrelationConfig(task="countdown", task_options="max_number=50").task_options == "max_number=50"
