#!/usr/bin/env bash
# The whole test suite (slow end-to-end tests included; deselect locally with -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser.sh
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest tests "$@"
