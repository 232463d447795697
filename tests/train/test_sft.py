"""SFT: the loss follows the spec, training is seeded, checkpoints resume exactly."""

import json
from pathlib import Path

import pytest
import torch

from mro.errors import MroError
from mro.models.tiny import TinyDLM
from mro.train.loss import masked_diffusion_loss
from mro.train.sft import SFTConfig, make_batch, train_sft

SMALL = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64, batch_size=8, log_every=1, warmup=2, progress=False)


def records(final, kind="train"):
    """The log records of a run (its folder holds final/)."""
    lines = (Path(final).parent / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def test_loss_never_masks_the_prompt_and_weights_by_one_over_t(tiny_model):
    tokens = torch.randint(4, 20, (4, 10))
    maskable = torch.zeros_like(tokens, dtype=torch.bool)
    maskable[:, 6:] = True
    seen = {}

    class Spy:
        mask_token_id = tiny_model.mask_token_id

        def logits(self, x, attn=None):
            seen["x"] = x
            return tiny_model.logits(x, attn)

    loss = masked_diffusion_loss(Spy(), tokens, maskable, generator=torch.Generator().manual_seed(0))
    noised = seen["x"] == tiny_model.mask_token_id
    assert not noised[:, :6].any() and noised[:, 6:].any()
    # hand computation with the same draws
    g = torch.Generator().manual_seed(0)
    t = torch.rand(4, generator=g)
    p = (1 - 1e-3) * t + 1e-3
    assert torch.equal((torch.rand(tokens.shape, generator=g) < p[:, None]) & maskable, noised)
    logp = torch.log_softmax(tiny_model.logits(seen["x"]).float(), -1).gather(-1, tokens[..., None])[..., 0]
    ref = sum((-(logp[i][noised[i]]) / p[i]).sum() / 4 for i in range(4)) / 4
    assert torch.allclose(loss, ref, atol=1e-5)


def test_batches_are_deterministic_and_mask_only_blanks():
    cfg = SFTConfig(**SMALL)
    tok = TinyDLM.create().tokenizer
    from mro.tasks import get_task
    a, b = make_batch(get_task("sudoku"), tok, cfg, 3), make_batch(get_task("sudoku"), tok, cfg, 3)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    tokens, maskable, _ = a
    assert not maskable[:, 0].any()  # BOS prompt
    counts = maskable.sum(-1)
    assert counts.min() >= cfg.min_blanks and counts.max() <= cfg.max_blanks


def test_training_logs_and_resume_is_exact(tmp_path, monkeypatch):
    straight = train_sft(SFTConfig(out=str(tmp_path / "a"), steps=6, save_every=3, **SMALL))
    assert [r["update"] for r in records(straight)] == list(range(1, 7))
    # an interrupted run: killed during step 5 (checkpoint at 3), then the same command resumes
    import mro.train.sft as sft

    real = sft.make_batch

    def dies_at_step_4(task, tok, cfg, step):
        if step == 4:
            raise KeyboardInterrupt
        return real(task, tok, cfg, step)

    monkeypatch.setattr(sft, "make_batch", dies_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train_sft(SFTConfig(out=str(tmp_path / "b"), steps=6, save_every=3, **SMALL))
    monkeypatch.setattr(sft, "make_batch", real)
    with pytest.raises(MroError, match="--resume"):  # an existing run is never continued or overwritten silently
        train_sft(SFTConfig(out=str(tmp_path / "b"), steps=6, save_every=3, **SMALL))
    resumed = train_sft(SFTConfig(out=str(tmp_path / "b"), steps=6, save_every=3, resume=True, **SMALL))
    strip = lambda recs: [{k: v for k, v in r.items() if k not in ("cpu_min", "wall_min")} for r in recs]
    assert strip(records(straight)) == strip(records(resumed))  # each step once
    wa = TinyDLM.load(straight).module.state_dict()
    wb = TinyDLM.load(resumed).module.state_dict()
    assert all(torch.allclose(wa[k], wb[k]) for k in wa)


def test_loss_decreases_quickly(tmp_path):
    out = train_sft(SFTConfig(out=str(tmp_path / "c"), steps=40, lr=3e-3, **{**SMALL, "log_every": 10}))
    log = [r["loss"] for r in records(out)]  # each line the mean of its 10 steps
    assert log[-1] < 0.8 * log[0]


def test_resume_with_another_config_is_refused(tmp_path):
    train_sft(SFTConfig(out=str(tmp_path / "d"), steps=2, save_every=1, **SMALL))
    with pytest.raises(MroError, match="another config"):
        train_sft(SFTConfig(out=str(tmp_path / "d"), steps=4, lr=5e-4, resume=True, **SMALL))


def test_truncated_checkpoint_and_missing_run_are_one_line_errors(tmp_path):
    out = train_sft(SFTConfig(out=str(tmp_path / "e"), steps=2, save_every=1, **SMALL)).parent
    ckpt = out / "checkpoint" / "pytorch_model.bin"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(MroError, match="damaged or not a checkpoint"):
        train_sft(SFTConfig(out=str(out), steps=4, resume=True, **SMALL))
    with pytest.raises(MroError, match="holds no run to continue"):
        train_sft(SFTConfig(out=str(tmp_path / "f"), steps=4, resume=True, **SMALL))
    assert not (tmp_path / "f").exists()  # a failed run leaves no empty folder behind


def test_bad_values():
    with pytest.raises(MroError, match="steps must be >= 1"):
        SFTConfig(steps=0)
    with pytest.raises(MroError, match="lr must be > 0"):
        SFTConfig(lr=0)


def test_task_options_reach_the_generator_and_bad_ones_are_one_line():
    from mro.models.tokenizer import CharTokenizer
    from mro.tasks import get_task

    cfg = SFTConfig(task="countdown", batch_size=8, task_options="n_numbers=3,max_number=9,layout=chain")
    tokens, maskable, _ = make_batch(get_task("countdown"), CharTokenizer(), cfg, step=0)
    text = CharTokenizer().decode(tokens[0])
    assert "=" in text and "," in text.split(":", 1)[1]  # the chain layout: 3+4=7,7*2=14
    assert maskable.sum(1).tolist() == [20] * 8
    with pytest.raises(MroError, match="bad task option for countdown.*colour") as err:
        SFTConfig(task="countdown", task_options="colour=3")
    assert "\n" not in str(err.value)
    with pytest.raises(MroError, match="layout must be one of expression, chain"):
        SFTConfig(task="countdown", task_options="layout=tree")


def test_validation_lines_in_the_log(tmp_path):
    out = tmp_path / "v"
    final = train_sft(SFTConfig(out=str(out), steps=4, val_every=2, val_n=8, val_steps=[2, 4], **SMALL))
    vals = records(final, "val")
    assert [r["update"] for r in vals] == [2, 4]
    assert all(set(r["solved"]) == {"2", "4"} and all(0 <= v <= 1 for v in r["solved"].values()) for r in vals)
    assert (out / "best" / "model.safetensors").is_file() and (out / "curves.png").is_file()
    with pytest.raises(MroError, match="val_steps must be >= 1"):
        SFTConfig(val_steps=[0])


def test_ordered_masks_are_suffixes_of_the_response():
    class Recorder:
        mask_token_id = 1

        def logits(self, x, attention_mask):
            self.seen = x.clone()
            return torch.zeros(*x.shape, 6, requires_grad=True)

    tokens = torch.full((64, 12), 4)
    maskable = torch.zeros(64, 12, dtype=torch.bool)
    maskable[:, 3:] = True
    model = Recorder()
    masked_diffusion_loss(model, tokens, maskable, generator=torch.Generator().manual_seed(0), ordered_fraction=1.0)
    masked = model.seen == 1
    assert not masked[:, :3].any() and masked.any(1).all()
    for row in masked[:, 3:].int().tolist():  # 0...0 1...1: a suffix
        assert row == sorted(row)
    masked_diffusion_loss(model, tokens, maskable, generator=torch.Generator().manual_seed(0))
    assert any(r != sorted(r) for r in (model.seen[:, 3:] == 1).int().tolist())  # i.i.d. masks are not
    with pytest.raises(MroError, match="ordered_masks must be <= 1"):
        SFTConfig(ordered_masks=1.5)


def test_resume_a_run_from_before_a_field_existed(tmp_path):
    out = tmp_path / "old"
    train_sft(SFTConfig(out=str(out), steps=2, save_every=2, **SMALL))
    run = json.loads((out / "run.json").read_text())
    for added in ("ordered_masks", "task_options", "val_every"):
        run.pop(added)
    (out / "run.json").write_text(json.dumps(run))
    train_sft(SFTConfig(out=str(out), steps=3, resume=True, **SMALL))  # missing fields read as their defaults
    run["lr"] = 0.5
    (out / "run.json").write_text(json.dumps(run))
    with pytest.raises(MroError, match="another config"):
        train_sft(SFTConfig(out=str(out), steps=4, resume=True, **SMALL))


def test_a_run_of_an_older_mro_says_how_to_go_on(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    torch.save({"step": 2}, old / "checkpoint.pt")
    with pytest.raises(MroError, match=r"older mro \(checkpoint.pt\).*--model") as err:
        train_sft(SFTConfig(out=str(old), steps=4, resume=True, **SMALL))
    assert "\n" not in str(err.value)


def test_bf16_runs_the_forward_under_autocast_and_still_learns(tmp_path, monkeypatch):
    import mro.train.sft as sft

    seen = []
    real = sft.masked_diffusion_rows

    def spy(model, *args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu"))
        logits = model.logits(args[0], args[2])
        seen.append(logits.dtype)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(sft, "masked_diffusion_rows", spy)
    out = train_sft(SFTConfig(out=str(tmp_path / "bf16"), steps=30, lr=3e-3, bf16=True, **SMALL))
    assert seen[:2] == [True, torch.bfloat16]
    losses = [r["loss"] for r in records(out)]
    assert losses[-1] < losses[0]
    # the saved weights stay fp32
    assert all(p.dtype == torch.float32 for p in TinyDLM.load(str(out)).module.parameters())


def test_micro_batches_accumulate_to_the_whole_batch(tmp_path):
    whole = train_sft(SFTConfig(out=str(tmp_path / "whole"), steps=3, **SMALL))
    micro = train_sft(SFTConfig(out=str(tmp_path / "micro"), steps=3, micro_batch=3, **SMALL))  # 3 + 3 + 2 rows
    wa, wb = TinyDLM.load(whole).module.state_dict(), TinyDLM.load(micro).module.state_dict()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert records(whole)[-1]["loss"] == pytest.approx(records(micro)[-1]["loss"], abs=1e-6)
