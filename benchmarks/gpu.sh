#!/usr/bin/env bash
# The GPU check: every GPU path of egoindex in one prepared run of under 8 minutes
# (benchmarks/gpu_check.py: video decode, JPEG decode, ViT-B-32 / ViT-L-14 bf16 embedding, Whisper,
# FAISS, NCCL all_reduce, DDP training), written to benchmarks/results/gpu-check.json and
# gpu-embed-*.json. A section that cannot run records why; a run cut short keeps what it did.
#
#   bash benchmarks/gpu.sh                                        # on a machine with CUDA devices
#   bash benchmarks/gpu.sh --device cpu --quick --out-dir /tmp/g  # the CPU fallbacks (what the tests run)
#
# PY picks the interpreter (default .venv/bin/python); BUDGET_S the seconds after which no new work
# starts (default 420); the whole script is stopped at BUDGET_S + 50 s whatever happens.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
BUDGET_S="${BUDGET_S:-420}"
export HF_HUB_OFFLINE=1 LANCE_LOG="${LANCE_LOG:-error}" PYTHONUNBUFFERED=1
echo "[gpu.sh] $(date -u +%FT%TZ) $(hostname) python $("$PY" -c 'import sys; print(sys.version.split()[0])')"
if command -v nvidia-smi >/dev/null; then nvidia-smi -L; else echo "[gpu.sh] nvidia-smi: not found"; fi
timeout --signal=INT --kill-after=20 "$((BUDGET_S + 50))" "$PY" -m benchmarks.gpu_check --budget-s "$BUDGET_S" "$@"
rc=$?
echo "[gpu.sh] exit $rc"
exit "$rc"
