"""The run folder of a training run (docs/architecture.md): the lock, ``run.json`` with the
explicit ``--resume`` check, and the JSONL log that a resumed run writes each update into once.

A run folder holds ``run.json`` (the config that made it), ``log.jsonl`` (one line per logged
update and per validation), ``checkpoint/`` (:mod:`mro.train.checkpoint`), ``best/`` (the model with
the best validation score), ``final/`` (the model where the run stopped) and ``curves.png``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path

from mro.config import to_dict
from mro.errors import MroError
from mro.io import atomic_write_json, atomic_write_text, read_jsonl

LOG = "log.jsonl"


def open_run(cfg, accelerator=None) -> Path:
    """Create the run folder, or check that ``--resume`` continues the same run.

    Without ``--resume`` a folder that already holds a run is refused; with it, every field that
    changes what is computed must equal the saved run's (a field the saved run predates counts as
    its default). Under several processes the first one checks and creates; the others wait for
    it and share its verdict.
    """
    if accelerator is None or accelerator.num_processes == 1:
        return _open_run(cfg)
    from accelerate.utils import broadcast_object_list

    verdict = [None]
    if accelerator.is_main_process:
        try:
            _open_run(cfg)
        except MroError as e:
            verdict = [str(e)]
    verdict = broadcast_object_list(verdict)
    if verdict[0] is not None:
        raise MroError(verdict[0])
    return Path(cfg.out)


def _defaults(cfg) -> dict:
    return {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            for f in dataclasses.fields(cfg)}


def _open_run(cfg) -> Path:
    out = Path(cfg.out)
    saved = out / "run.json"
    if out.exists() and not out.is_dir():
        raise MroError(f"--out {out} is a file, not a folder")
    if (out / "checkpoint.pt").is_file() and not saved.is_file():
        raise MroError(f"{out} holds a run of an older mro (checkpoint.pt) that cannot be resumed; its model "
                       f"loads as it is (--model {out}); to train it further start a new run from it, e.g. "
                       f"mro train sft --model {out} --out <new folder>")
    if saved.is_file():
        if not cfg.resume:
            raise MroError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        try:
            old = {**_defaults(cfg), **json.loads(saved.read_text())}
        except (ValueError, UnicodeDecodeError, TypeError):
            raise MroError(f"{saved} is not a readable run record; delete {out} to start over") from None
        new = to_dict(cfg)
        free = cfg.run_only()
        diff = sorted(k for k in set(old) | set(new) if k not in free and old.get(k) != new.get(k))
        if diff:
            k = diff[0]
            raise MroError(f"--resume: {out} was run with another config ({k}={old.get(k)!r}, not "
                           f"{new.get(k)!r}); use the same settings or another --out")
        return out
    if cfg.resume:
        raise MroError(f"--resume: {out} holds no run to continue")
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(saved, to_dict(cfg))
    except OSError as e:
        raise MroError(f"cannot write to --out {out}: {e.strerror}") from None
    return out


@contextlib.contextmanager
def locked(out: str):
    """Hold the output-folder lock for a run (the first process of a launch holds it for all)."""
    from mro.io import OutputLock

    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    with OutputLock(out):
        yield


def append_log(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(path: Path, until_update: int | None = None) -> list[dict]:
    """The log's records (a torn last line is dropped); with ``until_update``, only those up to it."""
    return [r for r in read_jsonl(path, warn=False) if until_update is None or r.get("update", 0) <= until_update]


def truncate_log(path: Path, until_update: int) -> None:
    """Keep the records up to ``until_update``: a resumed run writes each update once."""
    if path.is_file():
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in read_log(path, until_update)))
