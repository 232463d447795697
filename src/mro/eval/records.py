"""What every result records: hardware, versions, time; and crash-safe JSONL I/O (from :mod:`mro.io`)."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import torch

import mro
from mro.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl, repair_jsonl  # noqa: F401


def hardware() -> dict:
    """The machine a result came from."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "mro": mro.__version__}
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
