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
# Debian's slurm-wlm and munge for tests/e2e/test_slurm.py, which starts its own one-host cluster
# (scripts/slurm_cluster.sh); a failed install leaves those tests to skip (or fail under CI) with the reason.
bash scripts/slurm_cluster.sh install || echo "slurm_cluster.sh install failed: the Slurm tests will say why" >&2
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
WORKERS="${TEST_WORKERS:-2}"
XDIST=()
if [ "$WORKERS" != 0 ]; then XDIST=(-n "$WORKERS" --dist loadfile); fi
exec .venv/bin/python -m pytest tests "${XDIST[@]}" "$@"
