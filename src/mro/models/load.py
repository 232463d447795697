"""Resolve a model name to a backend: a built-in checkpoint name or a local folder.

Built-in names are the folders of ``mro/checkpoints`` (shipped in the package). Hugging Face
hub ids and local transformers checkpoints are handled by the ``hf`` backend (issue 5).
"""

from __future__ import annotations

from pathlib import Path

from mro.errors import MroError
from mro.models.base import DiffusionLM

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


def builtin_models() -> list[str]:
    """Names of the shipped tiny checkpoints."""
    if not CHECKPOINTS.is_dir():
        return []
    return sorted(p.name for p in CHECKPOINTS.iterdir() if (p / "config.json").is_file())


def load_model(name: str, device: str = "cpu") -> DiffusionLM:
    """Load a diffusion LM by built-in name or path (one-line error when neither fits)."""
    from mro.models.tiny import TinyDLM

    folder = CHECKPOINTS / name if name in builtin_models() else Path(name)
    if not folder.exists():
        known = ", ".join(builtin_models()) or "none"
        raise MroError(f"unknown model {name!r}: not a built-in model ({known}) and no such folder")
    if not (folder / "config.json").is_file():
        raise MroError(f"model folder {folder} has no config.json")
    model = TinyDLM.load(folder, name=name)
    model.module.to(device)
    return model
