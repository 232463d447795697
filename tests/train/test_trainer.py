"""The training spine: composed configs, the log window, max_minutes, the one checkpoint format."""

import dataclasses
import json

import pytest

from mro.errors import MroError
from mro.rewards.multi import RewardConfig
from mro.search import SearchConfig
from mro.train.ppl_scorer import ARConfig
from mro.train.rejection import RSConfig
from mro.train.rl import RLConfig
from mro.train.sft import SFTConfig, train_sft
from mro.train.trainer import _Window

SMALL = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64, batch_size=8, warmup=2, progress=False)


@pytest.mark.parametrize("cls", [SFTConfig, ARConfig, RLConfig, RSConfig])
def test_configs_are_one_chain_with_flat_fields(cls):
    assert all(len(c.__bases__) == 1 for c in cls.__mro__[:-1])  # no multiple inheritance
    names = [f.name for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names)) and all(f.metadata.get("help") for f in dataclasses.fields(cls))


def test_included_settings_become_the_layers_own_config():
    rl = RLConfig(rewards="tv=1,q=0.5", ppl_upper=50.0)
    assert isinstance(rl.reward, RewardConfig) and rl.reward.rewards == "tv=1,q=0.5" and rl.reward.ppl_upper == 50.0
    assert "reward" not in dataclasses.asdict(rl)  # run.json holds the flat fields only
    rs = RSConfig(k=3, collect="best-of-n", rewards="q")
    assert isinstance(rs.search, SearchConfig) and rs.search.k == 3 and rs.search.greedy_candidate is True
    assert rs.search.tv_tokens == "all"  # the search layer's own default, as in mro eval
    with pytest.raises(MroError, match="ppl_upper must be > 0"):  # the reward layer's per-field check
        RLConfig(ppl_upper=0.0)
    with pytest.raises(MroError, match="unknown reward"):  # and its own cross-field rule
        RLConfig(rewards="tv,colour")


def test_the_log_window_holds_means():
    w = _Window()
    w.add({"loss": 1.0, "grad_norm": None})
    assert w.mean() == {"loss": 1.0, "grad_norm": None} and w.n == 0
    w.add({"loss": 1.0})
    w.add({"loss": 2.0})
    state = w.state()
    assert _Window(state).mean() == {"loss": 1.5}  # a checkpoint keeps the open window


def test_a_run_out_of_time_stops_whole_and_a_resume_goes_on(tmp_path, monkeypatch):
    from mro.train.trainer import Trainer

    out = tmp_path / "budget"
    train_sft(SFTConfig(out=str(out), steps=50, max_minutes=1e-9, **SMALL))
    assert not (out / "log.jsonl").exists()  # the budget is checked before each update
    monkeypatch.setattr(Trainer, "budget_left", lambda self: self.done < 3)  # out of time after 3 updates
    out = tmp_path / "budget2"
    train_sft(SFTConfig(out=str(out), steps=50, log_every=5, **SMALL))
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["update"] for r in log] == [3]  # the open window is logged where the run stopped
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["update"] == 3
    monkeypatch.undo()
    train_sft(SFTConfig(out=str(out), steps=10, log_every=5, resume=True, **SMALL))
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["update"] for r in log] == [3, 5, 10]


def test_a_checkpoint_of_the_older_rl_and_rs_layout_says_how_to_go_on(tmp_path):
    out = tmp_path / "run"
    train_sft(SFTConfig(out=str(out), steps=2, save_every=2, **SMALL))
    ckpt = out / "checkpoint"
    (ckpt / "custom_checkpoint_0.pkl").rename(ckpt / "scheduler.bin")  # where accelerate kept the schedule before
    with pytest.raises(MroError, match="older mro.*--model .*best"):
        train_sft(SFTConfig(out=str(out), steps=4, resume=True, **SMALL))


@pytest.mark.parametrize("threads, expected", [(0, 1), (2, 2)])
def test_threads_auto_is_one_for_a_tiny_model_and_a_given_count_is_kept(tmp_path, threads, expected):
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        train_sft(SFTConfig(out=str(tmp_path / f"t{threads}"), steps=1, threads=threads, **SMALL))
        assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)
