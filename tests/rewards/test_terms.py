"""The reward registry: MultiReward sums every registered term by weight, so a new reward is one function."""

import pytest
import torch

from mro.errors import MroError
from mro.rewards import RewardWeights, parse_rewards, register_reward, reward_terms
from mro.rewards.multi import MultiReward, RewardConfig
from mro.rewards.terms import _TERMS
from mro.sampling import DecodeConfig, generate
from mro.tasks import get_task


@pytest.fixture()
def length_reward():
    """A fourth reward (intra: committed positions of each group; inter: response length), removed after."""
    @register_reward("len", "intra")
    def _committed(reward, traj, bounds, generator):
        return torch.stack([((traj.commit_step >= s) & (traj.commit_step < e)).sum(-1).float() for s, e in bounds], 1)

    @register_reward("chars", "inter")
    def _chars(reward, texts, targets, examples):
        return torch.tensor([float(len(t)) for t in texts])

    yield
    del _TERMS["len"], _TERMS["chars"]


def test_builtin_terms_in_order():
    assert [(t.name, t.kind) for t in reward_terms()] == [("tv", "intra"), ("ppl", "intra"), ("q", "inter")]
    assert [t.name for t in reward_terms("inter")] == ["q"]
    w = parse_rewards("tv=2,q")
    assert (w["tv"], w["ppl"], w["q"]) == (2.0, 0.0, 1.0) and [t.name for t, _ in w.on()] == ["tv", "q"]


def test_a_new_term_is_named_weighted_and_summed(tiny_model, length_reward):
    task = get_task("sudoku")
    examples = task.generate(2, seed=0)
    prompts, responses = zip(*[(x.prompt_ids, x.response_ids) for x in (task.tiny_input(e, tiny_model.tokenizer)
                                                                        for e in examples)])
    traj = generate(tiny_model, prompts, DecodeConfig(gen_length=16, steps=4), responses=responses)
    bounds = [(0, 2), (2, 4)]
    tv_only = MultiReward(tiny_model, task, RewardConfig(rewards="tv")).intra(traj, bounds,
                                                                            torch.Generator().manual_seed(0))
    both = MultiReward(tiny_model, task, RewardConfig(rewards="tv,len=0.5")).intra(traj, bounds,
                                                                                torch.Generator().manual_seed(0))
    committed = torch.tensor([[((traj.commit_step[i] >= s) & (traj.commit_step[i] < e)).sum().item()
                               for s, e in bounds] for i in range(2)], dtype=torch.float)
    assert torch.allclose(both, tv_only + 0.5 * committed)
    reward = MultiReward(tiny_model, task, RewardConfig(rewards="q=2,chars=0.25"))
    texts = reward.texts(traj)
    expected = 2 * reward.quality(texts, examples=examples) + 0.25 * torch.tensor([float(len(t)) for t in texts])
    assert reward.has_inter and torch.allclose(reward.inter(texts, examples=examples), expected)
    assert RewardWeights(1, 1, 1, 1).w_len == 1.0 and parse_rewards("chars").w_chars == 1.0


def test_off_terms_are_not_computed(tiny_model):
    task = get_task("sudoku")
    reward = MultiReward(tiny_model, task, RewardConfig(rewards="tv"))
    assert reward.scorer is None and not reward.has_inter  # ppl off: no scorer loaded
    assert reward.inter(["1234"]).tolist() == [0.0]


def test_bad_weights_are_one_line():
    for bad, words in [(dict(w_bleu=1.0), "unknown reward weight 'w_bleu'"), (dict(w_q=float("nan")), "w_q")]:
        with pytest.raises(MroError, match=words) as e:
            RewardWeights(**bad)
        assert "\n" not in str(e.value)
    with pytest.raises(MroError, match="4 reward weights"):
        RewardWeights(1, 1, 1, 1)
