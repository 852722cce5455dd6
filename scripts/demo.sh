#!/usr/bin/env bash
# The main job on the embedded demo corpus, offline on CPU: demo data -> ingest -> summary.
# Everything lands in ./demo (override with DEMO_DIR). Rerunning reuses finished work.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
D="${DEMO_DIR:-demo}"
EGO=.venv/bin/egoindex
$EGO demo-data "$D/videos" --videos 12 --seconds 60
$EGO ingest "$D/videos" "$D/shards" --fps 2 --val-fraction 0.25 --shard-size 200 --workers 2
echo
echo "shards:   $D/shards/*.tar (sizes.json, manifest.csv, transcripts/)"
