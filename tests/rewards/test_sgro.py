"""SGRO grouping, group returns with potential shaping, group sampling (docs/method.md section 4)."""

import math

import pytest
import torch

from mro.errors import MroError
from mro.rewards import expand_to_steps, group_bounds, group_intra, group_returns, proposal_probs, sample_groups


def test_group_bounds():
    assert group_bounds(8, 4) == [(0, 4), (4, 8)]
    assert group_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]  # the last group is shorter
    assert group_bounds(3, 1) == [(0, 1), (1, 2), (2, 3)]
    assert group_bounds(3, 10) == [(0, 3)]
    assert group_bounds(0, 4) == []


@pytest.mark.parametrize("w", [0, -1, 2.0, "4"])
def test_group_bounds_bad_w(w):
    with pytest.raises(MroError, match="group size") as e:
        group_bounds(8, w)
    assert "\n" not in str(e.value)


def test_group_intra_end_sum_and_pregrouped():
    per_step = torch.arange(10.0).reshape(1, 10)
    bounds = group_bounds(10, 4)
    assert group_intra(per_step, bounds, "end").tolist() == [[3.0, 7.0, 9.0]]
    assert group_intra(per_step, bounds, "sum").tolist() == [[6.0, 22.0, 17.0]]
    grouped = torch.tensor([[0.5, 0.25, 1.0]])  # already [B, n_groups] (rewards evaluated per group)
    assert group_intra(grouped, bounds, "end") is grouped
    with pytest.raises(MroError, match="columns"):
        group_intra(torch.zeros(1, 7), bounds)
    with pytest.raises(MroError, match="group_reward"):
        group_intra(per_step, bounds, "mean")


def test_group_returns_formula():
    intra = torch.tensor([[1.0, 2.0, 3.0]])
    phi = torch.tensor([[0.0, 0.5, 1.0, 2.0]])
    rq = torch.tensor([10.0])
    out = group_returns(intra, phi, rq, lam=0.5, w_q=2.0)
    expected = [1 + 0.5 * 0.5 - 0.0, 2 + 0.5 * 1.0 - 0.5, 3 + 2 * 10 + 0.5 * 2.0 - 1.0]
    assert out.tolist() == [pytest.approx(expected)]
    # shaping and the quality term switch off
    assert group_returns(intra, None, None, w_q=0).tolist() == intra.tolist()
    with pytest.raises(MroError, match="w_q"):
        group_returns(intra, phi, None)
    with pytest.raises(MroError, match="phi"):
        group_returns(intra, phi[:, :3], rq)


def test_group_returns_shaping_telescopes():
    torch.manual_seed(0)
    intra = torch.zeros(5, 6)
    phi = torch.rand(5, 7)
    shaping = group_returns(intra, phi, None, lam=1.0, w_q=0.0)
    assert torch.allclose(shaping.sum(1), phi[:, -1] - phi[:, 0], atol=1e-6)
    # with intra and R_q in, the total is their sum plus the telescoped shaping
    intra, rq = torch.rand(5, 6), torch.rand(5)
    total = group_returns(intra, phi, rq, lam=1.0, w_q=1.0).sum(1)
    assert torch.allclose(total, intra.sum(1) + rq + phi[:, -1] - phi[:, 0], atol=1e-6)


def test_expand_to_steps():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    bounds = group_bounds(7, 3)
    assert expand_to_steps(values, bounds).tolist() == [
        [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0],
        [4.0, 4.0, 4.0, 5.0, 5.0, 5.0, 6.0],
    ]
    with pytest.raises(MroError):
        expand_to_steps(values, group_bounds(8, 2))


def test_proposals_are_distributions_with_bounded_weights():
    returns = torch.tensor([[0.0, 0.0, 0.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    q = proposal_probs(returns, "advantage", eps=0.1)
    assert torch.allclose(q.sum(1), torch.ones(2, dtype=q.dtype))
    assert (q > 0).all()
    assert torch.allclose(q[1], torch.full((4,), 0.25, dtype=q.dtype))  # equal returns: uniform
    assert q[0, 3] > q[0, 0]
    _, weights = sample_groups(returns, 50, "advantage", generator=torch.Generator().manual_seed(0))
    assert weights.max() <= (1 + 0.1) / 0.1 + 1e-6
    # a per-row baseline
    q_b = proposal_probs(returns, "advantage", baseline=torch.tensor([0.0, 1.0]))
    assert q_b[0, 0] < q_b[0, 3]
    with pytest.raises(MroError, match="proposal"):
        proposal_probs(returns, "greedy")
    with pytest.raises(MroError, match="integer >= 1"):
        sample_groups(returns, 0)


def test_sample_groups_is_reproducible_with_a_generator():
    returns = torch.randn(3, 8)
    a = sample_groups(returns, 4, "advantage", generator=torch.Generator().manual_seed(7))
    b = sample_groups(returns, 4, "advantage", generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (3, 4) and a[1].shape == (3, 4)
    assert ((a[0] >= 0) & (a[0] < 8)).all()


@pytest.mark.parametrize("proposal", ["uniform", "advantage"])
def test_importance_weighted_group_estimate_is_unbiased(proposal):
    """Monte Carlo: mean_i w_i f(g_i) over many draws matches the full mean of f over groups.

    f is the group return itself, so the advantage proposal (which favours large |G - mean|) is
    visibly biased without the weights. Tolerance: 5 standard errors of the estimator, computed
    exactly from q (sum_g q_g (f_g / (G q_g))^2 - mean^2, over n * reps draws): with a fixed seed
    the test is deterministic, and a correct estimator would fail it with probability ~1e-6 per
    row for a random seed.
    """
    gen = torch.Generator().manual_seed(1234)
    B, G, n, reps = 4, 10, 2, 20_000
    returns = torch.randn(B, G, generator=gen, dtype=torch.float64) * torch.tensor([[1.0], [3.0], [0.2], [1.0]])
    returns[3] = returns[3].abs() + 1.0  # a row far from 0, all of one sign
    f = returns
    full_mean = f.mean(1)

    tiled = returns.repeat_interleave(reps, dim=0)  # [B * reps, G]: many independent draws at once
    idx, w = sample_groups(tiled, n, proposal, generator=gen)
    f_tiled = f.repeat_interleave(reps, dim=0)
    estimate = (w * f_tiled.gather(1, idx)).mean(1).reshape(B, reps).mean(1)

    q = proposal_probs(returns, proposal)
    second_moment = (q * (f / (G * q)) ** 2).sum(1)
    stderr = ((second_moment - full_mean**2).clamp_min(0) / (n * reps)).sqrt()
    assert ((estimate - full_mean).abs() <= 5 * stderr + 1e-12).all(), (estimate, full_mean, stderr)

    if proposal == "advantage":  # the check has power: dropping the weights is caught
        unweighted = f_tiled.gather(1, idx).mean(1).reshape(B, reps).mean(1)
        assert ((unweighted - full_mean).abs() > 5 * stderr).any()
    assert math.isfinite(float(estimate.sum()))


def test_w_q_is_applied_once_on_the_combined_return(tiny_model):
    """MultiReward.quality gives the unweighted R_q; group_returns weights it by w_q, once."""
    from mro.rewards.multi import MultiReward, RewardConfig
    from mro.tasks import get_task

    task = get_task("sudoku")
    ex = task.generate(1, seed=0)[0]
    reward = MultiReward(tiny_model, task, RewardConfig(rewards="q=0.5"))
    q = reward.quality([ex.data["solution"]], examples=[ex])
    assert q.tolist() == [2.0]  # correct (1) + format (1), not yet weighted
    returns = group_returns(torch.zeros(1, 2), None, q, w_q=reward.weights.w_q)
    assert returns.tolist() == [[0.0, 1.0]]  # 0.5 * 2, not 0.5 * 0.5 * 2
