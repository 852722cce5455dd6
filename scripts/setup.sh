#!/usr/bin/env bash
# Set up .venv for egoindex on a machine that has only Python 3.11 and pip.
#
# uv installs from its cache by hard links, so the ~5 GB CUDA torch environment costs its disk
# space once, and every later fresh install (CI clones, new worktrees) takes seconds.
# requirements.lock pins every package (regenerate: scripts/lock.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -m uv --version >/dev/null 2>&1; then
  "$PY" -m pip install --quiet --disable-pip-version-check uv
fi
UV=("$PY" -m uv)
if [ ! -x .venv/bin/python ]; then
  "${UV[@]}" venv --quiet --python "$PY" .venv
fi
export UV_LINK_MODE="${UV_LINK_MODE:-hardlink}"
"${UV[@]}" pip install --quiet --python .venv/bin/python -r requirements.lock
"${UV[@]}" pip install --quiet --python .venv/bin/python --no-deps -e .
