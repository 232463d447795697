"""R_tv: batched leave-one-out equals a slow reference loop."""

import pytest
import torch

from mro.errors import MroError
from mro.rewards.verification import per_step_bounds, token_verification
from mro.sampling import DecodeConfig, generate


@torch.no_grad()
def loo_values(model, traj, b, s, e):
    """Leave-one-out log-prob of every token row ``b`` committed in steps [s, e), one forward each."""
    state = traj.state(e)[b]
    vals = {}
    for pos in range(traj.gen_length):
        if s <= int(traj.commit_step[b, pos]) < e:
            x = state.clone()
            col = traj.prompt_length + pos
            x[col] = model.mask_token_id
            logits = model.logits(x[None], traj.attention_mask[b][None])[0, col]
            vals[pos] = float(torch.log_softmax(logits.float(), -1)[state[col]])
    return vals


def reference(model, traj, bounds):
    out = torch.full((traj.batch_size, len(bounds)), float("nan"))
    for b in range(traj.batch_size):
        for gi, (s, e) in enumerate(bounds):
            vals = loo_values(model, traj, b, s, e)
            if vals:
                out[b, gi] = sum(vals.values()) / len(vals)
    return out


@pytest.fixture(scope="module")
def traj(tiny_model):
    prompts = [[5, 6, 7], [8], [9, 10]]
    return generate(tiny_model, prompts, DecodeConfig(gen_length=12, steps=6, temperature=0.7),
                    generator=torch.Generator().manual_seed(0))


def test_all_tokens_per_step_equals_reference(tiny_model, traj):
    bounds = per_step_bounds(6)
    fast = token_verification(tiny_model, traj, bounds, tokens="all", batch_size=5)
    assert torch.allclose(fast, reference(tiny_model, traj, bounds), atol=1e-5)


def test_groups_equal_reference(tiny_model, traj):
    bounds = [(0, 4), (4, 6)]
    fast = token_verification(tiny_model, traj, bounds, tokens="all")
    assert torch.allclose(fast, reference(tiny_model, traj, bounds), atol=1e-5)


def test_one_token_is_one_of_the_committed(tiny_model, traj):
    one = token_verification(tiny_model, traj, per_step_bounds(6), tokens=1, generator=torch.Generator().manual_seed(1))
    picked = set()
    for b in range(traj.batch_size):
        for t in range(6):
            vals = loo_values(tiny_model, traj, b, t, t + 1)
            assert len(vals) == 2  # 12 tokens in 6 steps
            hits = [p for p, v in vals.items() if abs(v - float(one[b, t])) < 1e-5]
            assert hits
            picked.add(sorted(vals).index(hits[0]))
    assert len(picked) == 2  # not always the same choice


def test_group_without_commits_is_nan_and_bad_input(tiny_model):
    m = tiny_model.mask_token_id
    traj = generate(tiny_model, [[5], [6]], DecodeConfig(gen_length=4, steps=4),
                    responses=[[m, m, m, m], [m, 7, 7, 7]])
    r = token_verification(tiny_model, traj, per_step_bounds(4), tokens=1)
    assert not r[0].isnan().any() and r[1, 0].isfinite() and r[1, 1:].isnan().all()
    with pytest.raises(MroError, match="tv_tokens"):
        token_verification(tiny_model, traj, per_step_bounds(4), tokens=0)
    with pytest.raises(MroError, match="outside"):
        token_verification(tiny_model, traj, [(0, 9)])
