"""The quality reward as a TRL-style callable ``f(completions, **columns) -> list[float | None]``."""

import doctest

import pytest

import mro.rewards.completion_fns as completion_fns_module
from mro.errors import MroError
from mro.rewards import quality_reward_fn

GRID = "1234341221434321"
PUZZLE = "0234341221434320"


def test_docstring_example_runs():
    assert doctest.testmod(completion_fns_module).failed == 0


def test_sudoku_strings_and_chat_lists():
    fn = quality_reward_fn("sudoku")
    chat = [{"role": "user", "content": "solve"}, {"role": "assistant", "content": f"<answer>{GRID}</answer>"}]
    wrong = "1234341221434322"
    out = fn([GRID, chat, wrong, "", 17], puzzle=[PUZZLE] * 5, solution=[GRID] * 5, prompts=["p"] * 5)
    assert out == [2.0, 2.0, 1.0, 0.0, None]  # 17 is not a completion: None, never a crash
    assert fn.__name__ == "quality_sudoku"


def test_countdown_columns_and_weights():
    fn = quality_reward_fn("countdown", format_weight=0.0)
    completions = ["<answer>(12+3)*4-7</answer>", [{"role": "assistant", "content": "12*4+3-7"}], "<answer></answer>"]
    out = fn(completions, nums=[[3, 4, 7, 12]] * 3, target=[53] * 3)
    assert out == [1.0, 0.0, 0.0]


def test_unscorable_row_gives_none():
    fn = quality_reward_fn("sudoku")
    assert fn([GRID, GRID], puzzle=[None, PUZZLE], solution=[GRID, GRID]) == [None, 2.0]


def test_missing_column_is_a_one_line_error():
    fn = quality_reward_fn("countdown")
    with pytest.raises(MroError, match="'target'") as e:
        fn(["1+2"], nums=[[1, 2]])
    assert "\n" not in str(e.value)


def test_bad_construction():
    with pytest.raises(MroError, match="unknown task"):
        quality_reward_fn("chess")
    with pytest.raises(MroError, match="unknown quality weight"):
        quality_reward_fn("sudoku", w_tv=1.0)
    with pytest.raises(MroError, match="format_weight"):
        quality_reward_fn("sudoku", format_weight="big")


def test_perplexity_and_token_verification_callables(tiny_model):
    import math

    import torch

    from mro.models.ar import TinyARScorer
    from mro.models.tiny import TinyDLM
    from mro.rewards.perplexity import ppl_to_reward
    from mro.rewards.completion_fns import perplexity_reward_fn, token_verification_reward_fn

    torch.manual_seed(0)
    scorer = TinyARScorer(TinyDLM.create(d_model=32, n_layers=1, n_heads=2, d_ff=64, causal=True))
    ppl_fn = perplexity_reward_fn(scorer)
    completions = ["1234", [{"role": "assistant", "content": "4321"}], 7]
    assert ppl_fn(completions) == [ppl_to_reward(p) for p in scorer.perplexity(["1234", "4321"])] + [None]

    tv_fn = token_verification_reward_fn(tiny_model, tokens="all")
    got = tv_fn(["1234", ""], prompts=["9", "9"])
    tok = tiny_model.tokenizer
    x = torch.tensor([tok.encode("91234")])
    vals = []
    with torch.no_grad():
        for col in range(1, 5):
            masked = x.clone()
            masked[0, col] = tiny_model.mask_token_id
            vals.append(float(torch.log_softmax(tiny_model.logits(masked)[0, col], -1)[x[0, col]]))
    assert got[1] is None and math.isclose(got[0], sum(vals) / 4, abs_tol=1e-5)
