"""RL with the multi-reward: the loss is REINFORCE, group sampling is unbiased, runs resume exactly,
two processes equal one, bad settings are one-line errors."""

import json

import pytest
import torch

from mro.errors import MroError
from mro.models.tiny import TinyDLM
from mro.sampling import DecodeConfig, generate
from mro.tasks import get_task
from mro.tasks.base import tiny_batch
from mro.train.loss import committed_logprobs
from mro.train.rl import RLConfig, train_rl
from mro.train.rl_objective import micro_batches, policy_loss, step_coefficients
from mro.rewards.sgro import group_bounds

QUICK = dict(prompts=4, rollouts=2, steps=[3], val_n=8, val_every=2, val_steps=[3], rewards="q",
             lr_schedule="constant", threads=1, progress=False, device="cpu")  # constant: a resume may add updates



def rollouts(model, n=3, k=2, steps=3, temperature=1.0, seed=0):
    task = get_task("sudoku")
    examples = task.generate(n, seed=seed, split="train")
    prompts, responses = tiny_batch(task, examples, model.tokenizer)
    cfg = DecodeConfig(gen_length=16, steps=steps, temperature=temperature)
    traj = generate(model, [p for p in prompts for _ in range(k)], cfg, responses=[r for r in responses for _ in range(k)],
                    generator=torch.Generator().manual_seed(seed))
    return traj


def test_recomputed_logprobs_are_the_samplers(tiny_model):
    traj = rollouts(tiny_model, temperature=0.7)
    p = traj.prompt_length
    for t in range(traj.steps_done):
        committed = traj.commit_step == t
        logp = committed_logprobs(tiny_model, traj.state(t), traj.attention_mask, traj.response, committed, p, 0.7,
                                  [tiny_model.mask_token_id])
        assert torch.allclose(logp[committed], traj.logprob[committed], atol=1e-5)


def test_loss_gradient_is_hand_computed_reinforce(tiny_model):
    model = tiny_model
    traj = rollouts(model, n=3, k=2, temperature=1.0)
    cfg = RLConfig(**{**QUICK, "temperature": 1.0})
    adv = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-2.0, 1.0, 0.25],
                        [0.1, 0.2, 0.3], [-0.7, 0.4, 1.1], [0.9, -0.3, 0.0]])
    bounds = group_bounds(traj.steps_done, 1)
    coef = step_coefficients(adv, adv, bounds, cfg, torch.Generator())
    params = list(model.module.parameters())
    loss = sum(policy_loss(model, traj, pairs, coef, cfg, [model.mask_token_id], traj.batch_size)[0]
               for pairs in micro_batches(coef, 2))
    ours = torch.autograd.grad(loss, params)
    # by hand: -(1/N) sum_rows (1/G) sum_t A_t * sum_{i committed at t} log softmax(logits(s_t))[token_i]
    hand = 0.0
    n, g = traj.batch_size, traj.steps_done
    for r in range(n):
        for t in range(g):
            state = traj.state(t)[r:r + 1]
            logits = model.logits(state, traj.attention_mask[r:r + 1])[0, traj.prompt_length:].float()
            logits[:, model.mask_token_id] = float("-inf")
            logp = torch.log_softmax(logits, -1)
            for i in (traj.commit_step[r] == t).nonzero().flatten().tolist():
                hand = hand - adv[r, t] / g * logp[i, traj.response[r, i]] / n
    theirs = torch.autograd.grad(hand, params)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("proposal", ["uniform", "advantage"])
def test_sampled_groups_leave_the_expected_loss_unchanged(proposal):
    torch.manual_seed(0)
    returns = torch.randn(5, 4)
    adv = returns - returns.mean(0)
    bounds = group_bounds(8, 2)
    full = step_coefficients(returns, adv, bounds, RLConfig(**QUICK, groups=0), torch.Generator())
    cfg = RLConfig(**QUICK, groups=2, proposal=proposal)
    gen = torch.Generator().manual_seed(1)
    draws = 20_000
    mean = sum(step_coefficients(returns, adv, bounds, cfg, gen) for _ in range(draws)) / draws
    # the loss is linear in these coefficients, so equal expectations mean an unbiased gradient
    assert torch.allclose(mean, full, atol=0.03 * float(full.abs().max()))
    assert not torch.allclose(step_coefficients(returns, adv, bounds, cfg, gen), full)  # one draw differs


def read(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def weights(out):
    return torch.load(out / "checkpoint" / "pytorch_model.bin", map_location="cpu", weights_only=True)


def strip(records):
    drop = {"rollouts_per_s", "cpu_min", "wall_min"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


def test_kill_and_resume_reproduce_the_uninterrupted_run(tmp_path, model_dir, monkeypatch):
    # intra_scale spread: the running spreads must come back with the checkpoint (a model that solves
    # some puzzles, so that R_q has a spread to scale by)
    base = dict(QUICK, model="sudoku-tiny", updates=4, rewards="tv,q", baseline="group", intra_scale="spread")
    straight = tmp_path / "straight"
    train_rl(RLConfig(**base, out=str(straight)))
    import mro.train.rl as rl

    real = rl.rl_update
    calls = {"n": 0}

    def dies_at_update_3(*args, **kwargs):
        if args[2] == 3:  # update index 3: after the checkpoint at update 2 and one more update
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(*args, **kwargs)

    killed = tmp_path / "killed"
    monkeypatch.setattr(rl, "rl_update", dies_at_update_3)
    with pytest.raises(KeyboardInterrupt):
        train_rl(RLConfig(**base, out=str(killed)))
    monkeypatch.setattr(rl, "rl_update", real)
    with pytest.raises(MroError, match="--resume"):
        train_rl(RLConfig(**base, out=str(killed)))  # an existing run is never overwritten silently
    train_rl(RLConfig(**base, out=str(killed), resume=True))
    a, b = read(straight), read(killed)
    assert [r["update"] for r in b if r["kind"] == "train"] == [1, 2, 3, 4]  # each update logged once
    assert strip(a) == strip(b)
    wa, wb = weights(straight), weights(killed)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (killed / "best" / "model.safetensors").is_file() and (killed / "curves.png").is_file()


def test_resume_refuses_changed_settings(tmp_path, model_dir):
    out = tmp_path / "run"
    train_rl(RLConfig(**QUICK, model=str(model_dir), updates=2, out=str(out)))
    with pytest.raises(MroError, match="lr"):
        train_rl(RLConfig(**QUICK, model=str(model_dir), updates=4, out=str(out), resume=True, lr=1e-3))
    with pytest.raises(MroError, match="no run to continue"):
        train_rl(RLConfig(**QUICK, model=str(model_dir), out=str(tmp_path / "none"), resume=True))


def test_two_processes_equal_one(tmp_path, model_dir):
    from tests.train.processes import one_and_two_processes

    args = ["train", "rl", "--model", str(model_dir), "--task", "sudoku", "--prompts", "4", "--rollouts", "2",
            "--shards", "2", "--updates", "2", "--val-every", "2", "--val-n", "8", "--val-steps", "3",
            "--rewards", "tv,q", "--baseline", "batch", "--device", "cpu", "--progress", "false", "--temperature", "1"]
    one_and_two_processes(args, tmp_path)
    wa, wb = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k
    ta = [r for r in read(tmp_path / "one") if r["kind"] == "train"]
    tb = [r for r in read(tmp_path / "two") if r["kind"] == "train"]
    assert len(ta) == len(tb) == 2
    for ra, rb in zip(ta, tb):  # the log reports the whole batch, not one process's share
        for key in ("reward", "q_mean", "tv_mean", "solved", "same_reward_frac", "loss", "grad_norm"):
            assert ra[key] == pytest.approx(rb[key], abs=1e-4), key


@pytest.mark.parametrize("override, message", [
    ({"baseline": "group", "rollouts": 1}, "rollouts >= 2"),
    ({"lr": 0.0}, "lr must be"),
    ({"lr": -1e-4}, "lr must be"),
    ({"temperature": 0.0}, "temperature must be"),
    ({"baseline": "mean"}, "unknown baseline 'mean'"),
    ({"credit": "all"}, "unknown credit 'all'"),
    ({"labels": "vote", "rollouts": 1, "baseline": "none"}, "labels 'vote' needs rollouts >= 2"),
    ({"verifier": "frozen"}, "unknown verifier 'frozen'"),
    ({"judge": "end"}, "unknown judge 'end'"),
    ({"intra_scale": "std"}, "unknown intra_scale 'std'"),
    ({"steps": [0]}, "steps must be"),
    ({"groups": -1}, "groups must be"),
    ({"kl_coef": float("nan")}, "kl_coef"),
    ({"max_minutes": 0.0}, "max_minutes"),
])
def test_bad_settings_are_one_line_errors(override, message):
    with pytest.raises(MroError, match=message):
        RLConfig(**{**QUICK, **override})


def test_unknown_config_key_and_foreign_checkpoint_are_one_line_errors(tmp_path, model_dir):
    from mro.cli import main

    cfg = tmp_path / "rl.yaml"
    cfg.write_text("updates: 2\nlearning_rate: 0.1\n")
    assert main(["train", "rl", "--config", str(cfg), "--out", str(tmp_path / "x")]) == 2
    out = tmp_path / "run"
    train_rl(RLConfig(**QUICK, model=str(model_dir), updates=2, out=str(out)))
    other = tmp_path / "other-model"
    TinyDLM.create(d_model=64, n_layers=1, n_heads=2, d_ff=64).save(other)
    run = json.loads((out / "run.json").read_text())
    run["model"] = str(other)
    (out / "run.json").write_text(json.dumps(run))
    with pytest.raises(MroError, match="cannot resume"):
        train_rl(RLConfig(**QUICK, model=str(other), updates=4, out=str(out), resume=True))


def test_baselines_and_scaled_advantages():
    returns = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 0.0], [4.0, 2.0]])  # 2 problems x K=2, 2 groups
    group = RLConfig(**{**QUICK, "baseline": "group"})
    from mro.train.rl_objective import advantages_of

    assert torch.equal(advantages_of(returns, group), torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-2.0, -1.0], [2.0, 1.0]]))
    batch = RLConfig(**{**QUICK, "baseline": "batch"})
    assert torch.allclose(advantages_of(returns, batch), returns - returns.mean(0))
    assert torch.equal(advantages_of(returns, RLConfig(**{**QUICK, "baseline": "none"})), returns)
    scaled = advantages_of(returns, RLConfig(**{**QUICK, "baseline": "group", "scale_advantages": True}))
    per = scaled.view(2, 2, 2)
    assert torch.allclose(per.std(1), torch.ones(2, 2), atol=1e-3)  # unit spread within each problem


def test_task_options_default_per_task():
    assert RLConfig().task_options == "min_blanks=10,max_blanks=12"
    assert RLConfig(task="countdown").task_options == "n_numbers=3,max_number=100,max_target=100"  # the README's
    assert RLConfig(task="countdown", task_options="max_number=50").task_options == "max_number=50"


def test_cosine_schedule_decays_to_a_tenth_and_fixes_updates(tmp_path, model_dir):
    from mro.models.load import load_model
    from mro.train.setup import optimizer_for

    cfg = RLConfig(model=str(model_dir), lr=1e-3, warmup=2, lr_schedule="cosine", updates=12)
    opt, sched = optimizer_for(load_model(str(model_dir)), cfg, cfg.updates)
    lrs = []
    for _ in range(14):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:])) and lrs[12] == pytest.approx(1e-4) == lrs[13]
    with pytest.raises(MroError, match="unknown lr_schedule 'linear'; choose from constant, cosine"):
        RLConfig(lr_schedule="linear")
    out = tmp_path / "run"
    train_rl(RLConfig(**{**QUICK, "lr_schedule": "cosine"}, model=str(model_dir), updates=2, out=str(out)))
    with pytest.raises(MroError, match="updates"):  # the schedule depends on it: not a run-only setting here
        train_rl(RLConfig(**{**QUICK, "lr_schedule": "cosine"}, model=str(model_dir), updates=4, out=str(out), resume=True))
