"""What every result records: hardware, versions, time; and crash-safe JSONL I/O."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import torch

import mro


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


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a torn last line (a run killed mid-write) is dropped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def repair_jsonl(path: Path) -> list[dict]:
    """Read a JSONL file and cut a torn tail off it, so that appending continues cleanly."""
    rows = read_jsonl(path)
    if path.is_file() and len(path.read_text().splitlines()) != len(rows):
        tmp = path.with_suffix(".repair")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.replace(path)
    return rows


def append_jsonl(path: Path, rows: list[dict]) -> None:
    """Append rows and flush them to disk (what is written survives an interruption)."""
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
