"""The one checkpoint format of every trainer (docs/architecture.md), and saved models.

``checkpoint/`` holds weights, optimizer, scheduler and every process's RNG state (written by
``accelerator.save_state``) and ``trainer_state.json`` (update, best score, clocks, the open
log window); it is written to a fresh folder and swapped in, so a kill at any moment leaves a
whole checkpoint. ``best/`` and ``final/`` are model folders that ``--model`` loads (a LoRA run
saves its adapter).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mro.errors import MroError
from mro.io import atomic_write_json
from mro.models.base import DiffusionLM


def _swap_in(tmp: Path, final: Path) -> None:
    old = final.with_name(final.name + ".old")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(accelerator, out: Path, state: dict) -> None:
    """Weights, optimizer, scheduler and RNG state plus ``state``, written whole and swapped in."""
    final, tmp = out / "checkpoint", out / "checkpoint.tmp"
    if accelerator.is_main_process:  # the folder exists before any process writes into it
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=False)
    accelerator.wait_for_everyone()  # every process's RNG state is written before the swap
    if accelerator.is_main_process:
        atomic_write_json(tmp / "trainer_state.json", state)
        _swap_in(tmp, final)
    accelerator.wait_for_everyone()


def has_checkpoint(out: Path) -> bool:
    return any((out / name / "trainer_state.json").is_file() for name in ("checkpoint", "checkpoint.old"))


def load_checkpoint(accelerator, out: Path) -> dict | None:
    """Restore the last checkpoint of ``out`` (None when the run has none yet)."""
    final, old = out / "checkpoint", out / "checkpoint.old"
    if not final.is_dir() and old.is_dir():  # killed between the two renames
        final = old
    state_file = final / "trainer_state.json"
    if not state_file.is_file():
        return None
    if (final / "scheduler.bin").is_file() and not (final / "custom_checkpoint_0.pkl").is_file():
        raise MroError(f"{final} was written by an older mro (its schedule in scheduler.bin) and cannot be resumed; "
                       f"its models load as they are: start a new run from one, e.g. --model {out / 'best'}")
    try:
        state = json.loads(state_file.read_text())
        accelerator.load_state(str(final))
    except Exception as e:  # a truncated or foreign checkpoint: one line, not a traceback
        first = str(e).splitlines()[0] if str(e) else ""
        raise MroError(f"cannot resume from {final}: damaged or not a checkpoint of this run "
                       f"({type(e).__name__}: {first})") from None
    return state


def save_model(accelerator, model: DiffusionLM, prepared, folder: Path) -> None:
    """Save the trained model (or its LoRA adapter) as a folder ``--model`` loads."""
    from mro.models.tiny import TinyDLM

    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(prepared)
    raw = accelerator.unwrap_model(prepared)
    if accelerator.is_main_process:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(model, TinyDLM):
            tiny = TinyDLM(raw, model.tokenizer, model.name)
            tiny.task = getattr(model, "task", None)
            tiny.save(tmp)
        else:
            raw.save_pretrained(str(tmp), state_dict=state)
            model.tokenizer.save_pretrained(str(tmp))
        _swap_in(tmp, folder)
    accelerator.wait_for_everyone()
