#!/usr/bin/env bash
# The whole test suite (slow end-to-end tests included; deselect locally with -m "not slow").
#
# Two pytest-xdist workers, one test file at a time each (--dist loadfile: a module's fixtures are
# built once, in one worker). The session chain of tests/conftest.py (demo corpus -> ingest -> train
# -> build) is built once per run and shared by the workers (conftest.build_once). On CI's two cores
# this takes the suite from ~16-21 min to ~9 min. TEST_WORKERS=0 runs everything in this process
# (e.g. to debug with --pdb); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser.sh
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
WORKERS="${TEST_WORKERS:-2}"
XDIST=()
if [ "$WORKERS" != 0 ]; then XDIST=(-n "$WORKERS" --dist loadfile); fi
exec .venv/bin/python -m pytest tests "${XDIST[@]}" "$@"
