"""What every result records: hardware, versions, time; and crash-safe JSONL I/O (from :mod:`mro.io`)."""

from __future__ import annotations

import datetime
import os
import platform

import torch

import mro
from mro.io import append_jsonl, read_jsonl, repair_jsonl  # noqa: F401  (re-exported)


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
