#!/usr/bin/env bash
# Fetch the optional GPU video decoders' wheels into benchmarks/gpu-wheels/ (git-ignored) on a machine
# that reaches PyPI, so that benchmarks/gpu_check.py can try them on a GPU machine that does not:
# it unpacks a wheel there only when the package is not importable. ~37 MB; not dependencies of egoindex.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PY="${PY:-../.venv/bin/python}"
ver="$("$PY" -c 'import sys; print(f"{sys.version_info.major}{sys.version_info.minor}")')"
mkdir -p gpu-wheels
pip download --no-deps --only-binary=:all: --python-version "$ver" --platform manylinux_2_28_x86_64 \
    -d gpu-wheels torchcodec pynvvideocodec
ls -l gpu-wheels
