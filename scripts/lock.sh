#!/usr/bin/env bash
# Re-pin requirements.lock from pyproject.toml (core + dev extras).
set -euo pipefail
cd "$(dirname "$0")/.."
"${PYTHON:-python3}" -m uv pip compile --quiet --python-version 3.11 --extra dev pyproject.toml -o requirements.lock
