"""The sampler reproduces LLaDA's schedule and exposes a faithful, resumable trajectory."""

import pytest
import torch

from mro.errors import MroError
from mro.sampling import PENDING, PREFILLED, DecodeConfig, denoise, generate, start
from mro.sampling.schedule import split_evenly


def llada_num_transfer_tokens(mask_index: torch.Tensor, steps: int) -> torch.Tensor:
    """LLaDA generate.py's get_num_transfer_tokens, restated as the reference."""
    mask_num = mask_index.sum(dim=1, keepdim=True)
    base = mask_num // steps
    remainder = mask_num % steps
    out = torch.zeros(mask_num.size(0), steps, dtype=torch.int64) + base
    for i in range(mask_num.size(0)):
        out[i, : remainder[i]] += 1
    return out


def prompts(n, seed=0, lo=2, hi=6):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(5, 40, (int(torch.randint(lo, hi, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


@pytest.mark.parametrize("gen_length,steps,block_length", [
    (16, 16, 16), (16, 8, 16), (16, 5, 16), (32, 8, 8), (24, 6, 8), (32, 12, 16), (12, 12, 4), (16, 32, 8)])
def test_commit_counts_follow_llada_schedule(tiny_model, gen_length, steps, block_length):
    cfg = DecodeConfig(gen_length=gen_length, steps=steps, block_length=block_length, temperature=0.7)
    traj = generate(tiny_model, prompts(5), cfg, generator=torch.Generator().manual_seed(0))
    spb = steps // (gen_length // block_length)
    expected = llada_num_transfer_tokens(torch.ones(5, block_length, dtype=torch.bool), spb).repeat(1, gen_length // block_length)
    assert torch.equal(traj.commits_per_step(), expected)
    assert traj.done and traj.steps_done == steps


def test_prefilled_rows_count_only_their_masks(tiny_model):
    m = tiny_model.mask_token_id
    # three rows with 10, 11 and 12 masks in one block of 16 (Sudoku-like infilling)
    responses = []
    for holes in (10, 11, 12):
        responses.append([m] * holes + [7] * (16 - holes))
    cfg = DecodeConfig(gen_length=16, steps=4, block_length=16)
    traj = generate(tiny_model, [[3]] * 3, cfg, responses=responses)
    mask_index = torch.tensor(responses) == m
    assert torch.equal(traj.commits_per_step(), llada_num_transfer_tokens(mask_index, 4))
    assert torch.equal(traj.commit_step == PREFILLED, ~mask_index)
    assert torch.equal(traj.response[~mask_index], torch.tensor(responses)[~mask_index])


def test_split_evenly_matches_reference():
    counts = torch.tensor([0, 1, 7, 16, 33])
    for steps in (1, 3, 4, 8):
        assert torch.equal(split_evenly(counts, steps), llada_num_transfer_tokens(
            torch.arange(40)[None, :] < counts[:, None], steps))


def test_nothing_outside_current_block_and_hooks_match_rebuilt_states(tiny_model):
    cfg = DecodeConfig(gen_length=24, steps=12, block_length=8, temperature=0.5)
    seen = []

    def hook(info):
        lo, hi = info.block * 8, (info.block + 1) * 8
        outside = info.committed.clone()
        outside[:, lo:hi] = False
        assert not outside.any()
        assert info.block == info.step // 4
        seen.append((info.step, info.state.clone(), info.committed.clone()))

    traj = generate(tiny_model, prompts(4, seed=1), cfg, hooks=[hook], generator=torch.Generator().manual_seed(3))
    assert [s for s, _, _ in seen] == list(range(12))
    for step, state, committed in seen:
        assert torch.equal(traj.state(step + 1), state)
        assert torch.equal(traj.committed_at(step), committed)
    assert (traj.state(0)[:, traj.prompt_length:] == tiny_model.mask_token_id).all()
    assert torch.equal(traj.state(12), traj.tokens)


@pytest.mark.parametrize("temperature,split", [(0.0, 5), (0.8, 3), (0.8, 7)])
def test_resume_equals_running_through(tiny_model, temperature, split):
    cfg = DecodeConfig(gen_length=16, steps=8, block_length=8, temperature=temperature)
    p = prompts(3, seed=2)
    full = generate(tiny_model, p, cfg, generator=torch.Generator().manual_seed(9))
    gen = torch.Generator().manual_seed(9)
    half = denoise(tiny_model, start(tiny_model, p, gen_length=16), cfg, num_steps=split, generator=gen)
    assert half.steps_done == split and not half.done
    rest = denoise(tiny_model, half, cfg, generator=gen)
    assert torch.equal(rest.tokens, full.tokens)
    assert torch.equal(rest.commit_step, full.commit_step)
    assert torch.allclose(rest.logprob, full.logprob, equal_nan=True)


def test_resume_from_a_rebuilt_intermediate_state(tiny_model):
    # TTS resumes from a state, not from the object that produced it
    cfg = DecodeConfig(gen_length=16, steps=8, block_length=16)
    full = generate(tiny_model, prompts(2, seed=4), cfg)
    part = denoise(tiny_model, start(tiny_model, prompts(2, seed=4), gen_length=16), cfg, num_steps=3)
    part.commit_step[part.commit_step >= 3] = PENDING
    assert torch.equal(denoise(tiny_model, part, cfg).tokens, full.tokens)


def test_temperature_zero_is_deterministic_and_temperature_samples(tiny_model):
    p = prompts(4, seed=5)
    greedy = DecodeConfig(gen_length=16, steps=16)
    assert torch.equal(generate(tiny_model, p, greedy).tokens, generate(tiny_model, p, greedy).tokens)
    hot = DecodeConfig(gen_length=16, steps=16, temperature=5.0)
    a = generate(tiny_model, p, hot, generator=torch.Generator().manual_seed(0)).tokens
    b = generate(tiny_model, p, hot, generator=torch.Generator().manual_seed(1)).tokens
    assert not torch.equal(a, b)


def test_left_padding_does_not_change_results(tiny_model):
    # RoPE is relative, so a row decodes the same alone or left-padded in a batch
    p = prompts(4, seed=6, lo=1, hi=8)
    cfg = DecodeConfig(gen_length=8, steps=8)
    batch = generate(tiny_model, p, cfg)
    for i, pr in enumerate(p):
        alone = generate(tiny_model, [pr], cfg)
        assert torch.equal(alone.response[0], batch.response[i])


def test_low_confidence_commits_the_most_confident(tiny_model):
    cfg = DecodeConfig(gen_length=8, steps=4)
    def hook(info):
        if info.step == 0:
            probs = torch.softmax(info.logits.float(), -1).max(-1).values
            chosen = probs[info.committed[:, :8]].view(-1, 2)
            others = probs.masked_fill(info.committed[:, :8], -1).max(-1).values
            assert (chosen.min(-1).values >= others).all()
    generate(tiny_model, prompts(3, seed=7), cfg, hooks=[hook])


def test_logprob_and_confidence_recorded(tiny_model):
    traj = generate(tiny_model, prompts(2), DecodeConfig(gen_length=8, steps=4))
    assert not traj.logprob.isnan().any() and (traj.logprob <= 0).all()
    assert torch.allclose(traj.logprob.exp(), traj.confidence, atol=1e-5)  # temperature 0: both softmax(logits)


def test_eos_suppression(tiny_model):
    # random remasking and classifier-free guidance are checked against the reference's arithmetic
    # in test_reference.py
    p = prompts(3, seed=8)
    eos = tiny_model.eos_token_id
    hot = DecodeConfig(gen_length=16, steps=16, temperature=50.0, suppress_eos=True)
    for seed in range(3):
        t = generate(tiny_model, p, hot, generator=torch.Generator().manual_seed(seed))
        assert not (t.response == eos).any()


def test_threshold_parallel_decoding(tiny_model):
    cfg = DecodeConfig(gen_length=16, steps=16, block_length=8, threshold=0.05)
    def hook(info):
        n = info.committed.sum(-1)
        assert (n >= 1).all() or info.trajectory.done
    traj = generate(tiny_model, prompts(3, seed=9), cfg, hooks=[hook])
    assert traj.done
    # block order respected: every position of block 0 committed before any of block 1
    assert (traj.commit_step[:, :8].max(-1).values < traj.commit_step[:, 8:].min(-1).values).all()
    strict = generate(tiny_model, prompts(3, seed=9), DecodeConfig(gen_length=16, steps=16, block_length=8, threshold=1.0))
    assert strict.steps_done == 16  # nothing reaches confidence 1: one token per step


@pytest.mark.parametrize("kwargs,words", [
    (dict(gen_length=10, steps=4, block_length=4), "not divisible by block_length"),
    (dict(gen_length=16, steps=6, block_length=4), "not divisible by the number of blocks"),
    (dict(gen_length=16, steps=0), "steps must be >= 1"),
    (dict(gen_length=16, steps=4, temperature=-1.0), "temperature"),
    (dict(gen_length=16, steps=4, remasking="top"), "unknown remasking"),
    (dict(gen_length=16, steps=4, threshold=1.5), "threshold"),
])
def test_bad_schedules_are_one_line_errors(kwargs, words):
    with pytest.raises(MroError, match=words) as e:
        DecodeConfig(**kwargs)
    assert "\n" not in str(e.value)


def test_replicas_share_the_first_forward_without_changing_results(tiny_model):
    cfg = DecodeConfig(gen_length=16, steps=8, temperature=0.9)
    base = denoise(tiny_model, start(tiny_model, prompts(3, seed=11), gen_length=16), cfg, num_steps=2)
    copies = base.repeat_interleave(4)
    calls = []
    real = tiny_model.logits
    tiny_model.logits = lambda x, a=None: calls.append(x.shape[0]) or real(x, a)
    try:
        shared = denoise(tiny_model, copies, cfg, num_steps=3, replicas=4, generator=torch.Generator().manual_seed(5))
    finally:
        del tiny_model.logits
    full = denoise(tiny_model, copies, cfg, num_steps=3, generator=torch.Generator().manual_seed(5))
    assert calls == [3, 12, 12]
    assert torch.equal(shared.tokens, full.tokens)
    assert torch.allclose(shared.logprob, full.logprob, equal_nan=True, atol=1e-5)
