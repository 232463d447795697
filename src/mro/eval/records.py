"""What every result records: hardware, versions, time; and crash-safe JSONL I/O (from :mod:`mro.io`)."""

from __future__ import annotations

import datetime
import functools
import os
import platform
import subprocess
from pathlib import Path

import torch

import mro
from mro.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl, repair_jsonl  # noqa: F401


@functools.lru_cache(maxsize=1)
def source_commit() -> dict:
    """The git commit of the ``mro`` source that runs (``{}`` outside a git checkout): its sha and
    whether the working tree had uncommitted changes."""
    here = Path(mro.__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git_commit": sha, "git_dirty": dirty}


def hardware() -> dict:
    """The machine a result came from, and the versions that produced it (mro's with its git commit)."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "mro": mro.__version__,
            **source_commit()}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda_devices"] = torch.cuda.device_count()
    return info


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def save_report(folder: Path, stem: str, lines: list[str], data: dict) -> None:
    """A measured result as ``<stem>.md`` (the table ``lines``) and ``<stem>.json`` (``data`` with the
    hardware and date added), each written at once; the table is printed too."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{stem}.md", "\n".join(lines) + "\n")
    atomic_write_json(folder / f"{stem}.json", {**data, "hardware": hardware(), "date": now()})
    print("\n".join(lines))
