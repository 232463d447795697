"""The sampler against a restatement of LLaDA's reference ``generate`` (its arithmetic, line by line).

The reference lets the model predict the mask token; this sampler never commits it (documented in
``mro.sampling.sampler``), so both run here on a model whose mask logit is far below the rest. The model may
also ignore the attention mask, as LLaDA's original remote code does.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mro.models import load_model
from mro.sampling import DecodeConfig, generate
from mro.sampling.sampler import _sample_block
from mro.tasks import get_task


class NoMaskModel:
    """Wraps a model: the mask token is never predicted; optionally the attention mask is ignored."""

    def __init__(self, model, ignore_attention=False):
        self.inner, self.ignore_attention = model, ignore_attention

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def logits(self, x, attention_mask=None):
        out = self.inner.logits(x, None if self.ignore_attention else attention_mask).clone()
        out[..., self.inner.mask_token_id] = -1e4  # finite, so guidance's difference stays a number
        return out


def reference_num_transfer_tokens(mask_index, steps):
    mask_num = mask_index.sum(dim=1, keepdim=True)
    base, remainder = mask_num // steps, mask_num % steps
    out = torch.zeros(mask_num.size(0), steps, dtype=torch.int64) + base
    for i in range(mask_num.size(0)):
        out[i, : remainder[i]] += 1
    return out


def reference_add_gumbel_noise(logits, temperature, u):
    if temperature == 0:
        return logits
    logits = logits.to(torch.float64)
    return logits.exp() / (-torch.log(u)) ** temperature


@torch.no_grad()
def reference_generate(model, x, prompt_len, attention_mask, steps, gen_length, block_length, cfg_scale=0.0):
    """LLaDA's ``generate`` at temperature 0 (``x``: prompt then response, masks where to generate)."""
    mask_id = model.mask_token_id
    x = x.clone()
    prompt_index = x != mask_id
    num_blocks = gen_length // block_length
    steps = steps // num_blocks
    for num_block in range(num_blocks):
        lo, hi = prompt_len + num_block * block_length, prompt_len + (num_block + 1) * block_length
        num_transfer_tokens = reference_num_transfer_tokens(x[:, lo:hi] == mask_id, steps)
        for i in range(steps):
            mask_index = x == mask_id
            if cfg_scale > 0.0:
                un_x = x.clone()
                un_x[prompt_index] = mask_id
                logits = model.logits(torch.cat([x, un_x]), torch.cat([attention_mask, attention_mask]))
                logits, un_logits = torch.chunk(logits, 2, dim=0)
                logits = un_logits + (cfg_scale + 1) * (logits - un_logits)
            else:
                logits = model.logits(x, attention_mask)
            x0 = torch.argmax(reference_add_gumbel_noise(logits, 0.0, None), dim=-1)
            p = F.softmax(logits, dim=-1)
            x0_p = torch.squeeze(torch.gather(p, dim=-1, index=torch.unsqueeze(x0, -1)), -1)
            x0_p[:, hi:] = -np.inf
            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, -np.inf)
            transfer_index = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(confidence.shape[0]):
                _, select_index = torch.topk(confidence[j], k=int(num_transfer_tokens[j, i]))
                transfer_index[j, select_index] = True
            x[transfer_index] = x0[transfer_index]
    return x


@pytest.fixture(scope="module")
def sudoku_model():
    return load_model("sudoku-tiny")


def test_confidences_near_one_stay_apart(sudoku_model):
    """A shipped-model case where exp(picked - logsumexp) in float32 ties confidences near 1 that the
    reference's softmax keeps apart, and so commits another position."""
    model = NoMaskModel(sudoku_model)
    tok = model.tokenizer
    puzzle = get_task("sudoku").generate(64, seed=0)[59].data["puzzle"]
    prompt = [tok.bos_token_id] + tok.encode(puzzle.replace("0", ""))  # [bos] + the given digits
    cfg = DecodeConfig(gen_length=16, steps=8, block_length=8)
    ours = generate(model, [prompt], cfg)
    x = torch.tensor([prompt + [model.mask_token_id] * 16])
    ref = reference_generate(model, x, len(prompt), torch.ones_like(x), 8, 16, 8)
    assert torch.equal(ours.tokens, ref)


def test_many_puzzles_match_the_reference_at_temperature_zero(sudoku_model):
    model = NoMaskModel(sudoku_model)
    tok = model.tokenizer
    for ex in get_task("sudoku").generate(64, seed=0)[:48]:
        prompt = [tok.bos_token_id] + tok.encode(ex.data["puzzle"].replace("0", ""))
        for steps, block in ((8, 8), (4, 16), (16, 4)):
            ours = generate(model, [prompt], DecodeConfig(gen_length=16, steps=steps, block_length=block))
            x = torch.tensor([prompt + [model.mask_token_id] * 16])
            assert torch.equal(ours.tokens, reference_generate(model, x, len(prompt), torch.ones_like(x), steps, 16, block))


@pytest.mark.parametrize("ignore_attention", [True, False])
def test_cfg_with_left_padding_matches_the_reference(tiny_model, ignore_attention):
    """Classifier-free guidance on left-padded rows: the unconditional row masks every prompt
    position, pads included, as the reference does (which matters when the model ignores the
    attention mask, as LLaDA's original remote code does)."""
    model = NoMaskModel(tiny_model, ignore_attention)
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(5, 40, (n,), generator=g).tolist() for n in (6, 3, 4, 2)]
    cfg = DecodeConfig(gen_length=8, steps=8, block_length=4, cfg_scale=1.5)
    ours = generate(model, prompts, cfg)
    p = max(map(len, prompts))
    pad, m = model.pad_token_id, model.mask_token_id
    x = torch.tensor([[pad] * (p - len(q)) + q + [m] * 8 for q in prompts])
    attn = torch.tensor([[0] * (p - len(q)) + [1] * (len(q) + 8) for q in prompts])
    ref = reference_generate(model, x, p, attn, 8, 8, 4, cfg_scale=1.5)
    assert torch.equal(ours.tokens, ref)


def test_cfg_formula_on_the_first_step(tiny_model):
    """The guided logits are un + (scale + 1) * (cond - un), the unconditional row with the prompt masked."""
    from mro.sampling.sampler import _model_logits, start

    model = NoMaskModel(tiny_model)
    traj = start(model, [[7, 8, 9]], gen_length=4)
    cfg = DecodeConfig(gen_length=4, steps=4, cfg_scale=2.0)
    cond = model.logits(traj.tokens, traj.attention_mask)
    un = model.logits(traj.tokens.masked_fill(torch.arange(7) < 3, model.mask_token_id), traj.attention_mask)
    expected = un + 3.0 * (cond - un)
    assert torch.allclose(_model_logits(model, traj, cfg), expected, atol=1e-4)


def test_float64_gumbel_path_and_logprob_at_temperature(tiny_model):
    """x0 is the reference's argmax(exp(logits) / (-log u) ** T) with u drawn in float64 from the
    same generator; the recorded log-probability is log softmax(logits / T) at x0."""
    torch.manual_seed(0)
    logits = torch.randn(3, 8, 500) * 4
    for temperature in (0.25, 1.0, 3.0):
        cfg = DecodeConfig(gen_length=8, steps=8, temperature=temperature)
        x0, conf, logp = _sample_block(logits, cfg, torch.Generator().manual_seed(11))
        u = torch.rand(logits.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
        assert torch.equal(x0, reference_add_gumbel_noise(logits, temperature, u).argmax(-1))
        expected = torch.log_softmax(logits / temperature, -1).gather(-1, x0[..., None]).squeeze(-1)
        assert torch.allclose(logp, expected, atol=1e-5)
        assert torch.allclose(conf, torch.softmax(logits, -1).gather(-1, x0[..., None]).squeeze(-1))
        # the draws are not the argmax: sampling happened, and differs between temperatures
        assert not torch.equal(x0, logits.argmax(-1))


def test_random_remasking_commits_uniformly_drawn_positions(tiny_model):
    """remasking=random: the committed positions are the top-n of uniform draws (from the generator,
    after the Gumbel noise), not the most confident ones."""
    logits = torch.randn(2, 8, 50)
    cfg = DecodeConfig(gen_length=8, steps=8, remasking="random")
    x0, conf, _ = _sample_block(logits, cfg, torch.Generator().manual_seed(5))
    assert torch.equal(conf, torch.rand(2, 8, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(x0, logits.argmax(-1))
    # across seeds the first committed position (4 steps, 2 per step) is spread over the block
    model = NoMaskModel(tiny_model)
    firsts = set()
    for seed in range(40):
        traj = generate(model, [[5, 6, 7]], DecodeConfig(gen_length=8, steps=4, remasking="random"),
                        generator=torch.Generator().manual_seed(seed))
        firsts |= set((traj.commit_step[0] == 0).nonzero().flatten().tolist())
        assert (traj.commit_step[0] >= 0).all() and (traj.commit_step[0].bincount(minlength=4) == 2).all()
    assert len(firsts) >= 6


def test_greedy_rows_decode_at_temperature_zero(tiny_model):
    """denoise(greedy_rows=...) decodes those rows as temperature 0 would, the others still sample."""
    from mro.sampling import denoise, start

    model = NoMaskModel(tiny_model)
    rows = [[5, 6, 7]] * 4
    greedy = generate(model, rows, DecodeConfig(gen_length=8, steps=4))
    hot = DecodeConfig(gen_length=8, steps=4, temperature=5.0)
    mixed = denoise(model, start(model, rows, gen_length=8), hot, generator=torch.Generator().manual_seed(0),
                    greedy_rows=torch.tensor([True, False, True, False]))
    assert torch.equal(mixed.tokens[[0, 2]], greedy.tokens[[0, 2]])
    assert torch.allclose(mixed.logprob[[0, 2]], greedy.logprob[[0, 2]])
    assert not torch.equal(mixed.tokens[[1, 3]], greedy.tokens[[1, 3]])
