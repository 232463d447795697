"""Resolve a model name to a backend: a built-in checkpoint, a tiny-model folder, or transformers.

Built-in names are the folders of ``mro/checkpoints`` (shipped in the package). A folder whose
``config.json`` has ``model_type: mro-tiny`` is a tiny model. Anything else (a Hugging Face hub id
or a local transformers checkpoint: LLaDA, Dream, a masked LM) goes to the ``hf`` backend
(native LLaDA and Dream by ``model_type``, :mod:`mro.models.native`), which gives a one-line
error saying how to pass a local path when the hub is unreachable.
"""

from __future__ import annotations

import json
from pathlib import Path

from mro.errors import MroError
from mro.models.base import DiffusionLM

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
#: the help of every verb's ``--remote-code`` (evaluation, training, lm-eval's model_args)
REMOTE_CODE_HELP = ("LLaDA and Dream: run the checkpoint's own modelling code (trust_remote_code) instead of "
                    "mro's native implementation (which needs no remote code and can cache keys and values)")


def builtin_models() -> list[str]:
    """Names of the shipped tiny checkpoints."""
    if not CHECKPOINTS.is_dir():
        return []
    return sorted(p.name for p in CHECKPOINTS.iterdir() if (p / "config.json").is_file())


def _is_tiny_folder(folder: Path) -> bool:
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type") == "mro-tiny"
    except (OSError, ValueError, AttributeError):
        return False


def load_model(name: str, device: str = "cpu", dtype: str = "auto", remote_code: bool = False) -> DiffusionLM:
    """Load a diffusion LM by built-in name, tiny-model folder, hub id or transformers folder.

    ``dtype`` is bf16/fp16/fp32/auto (auto: the tiny model stays fp32; transformers models get
    bf16 on CUDA, fp32 on CPU). ``device`` is cpu/cuda/auto. LLaDA and Dream checkpoints load
    mro's native implementations (no remote code, KV cache) unless ``remote_code`` asks for the
    checkpoint's own modelling code.
    """
    from mro.models.hf import resolve_device, resolve_dtype

    dev = resolve_device(device)
    folder = CHECKPOINTS / name if name in builtin_models() else Path(name)
    if folder.is_dir() and (folder / "adapter_config.json").is_file():  # a LoRA adapter (mro train --lora-r)
        from mro.models.hf import HFDiffusionLM

        return HFDiffusionLM.load_adapter(str(folder), device=str(dev), dtype=dtype, remote_code=remote_code)
    if folder.is_dir() and not (folder / "config.json").is_file():
        raise MroError(f"model folder {folder} has no config.json")
    if folder.is_dir() and _is_tiny_folder(folder):
        from mro.models.tiny import TinyDLM

        model = TinyDLM.load(folder, name=name)
        if model.module.cfg.causal:  # an autoregressive scorer would decode as a diffusion model, all wrong
            raise MroError(f"model {name!r} is a causal (autoregressive) model, not a diffusion model: it cannot "
                           f"decode; use it as a perplexity scorer (--ppl-scorer {name}) and pick a diffusion "
                           f"model for --model")
        model.module.to(dev)
        if dtype != "auto":
            model.module.to(resolve_dtype(dtype, dev))
        return model
    if name.startswith((".", "/", "~")) and not folder.exists():
        raise MroError(f"unknown model {name!r}: no such folder")
    from mro.models.hf import HFDiffusionLM

    try:
        return HFDiffusionLM.load(name, device=str(dev), dtype=dtype, remote_code=remote_code)
    except MroError as e:
        if folder.exists():
            raise
        known = ", ".join(builtin_models()) or "none"
        raise MroError(f"{e} (built-in models: {known})") from None
