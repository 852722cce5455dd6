#!/usr/bin/env bash
# The main job on the embedded demo corpus, offline on CPU:
# demo data -> ingest -> train -> build -> query, then the retrieval and EgoMCQ benchmarks on the
# val videos (unseen in training). Everything lands in ./demo (override with DEMO_DIR).
# Rerunning reuses finished work.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
D="${DEMO_DIR:-demo}"
EGO=.venv/bin/egoindex
EPOCHS="${DEMO_EPOCHS:-8}"
# 36 one-minute videos: 29 train, 7 val (inter-video EgoMCQ questions need at least 5 val videos,
# and fewer training videos do not teach the model anything that carries over to unseen ones)
$EGO demo-data "$D/videos" --videos 36 --seconds 60
$EGO ingest "$D/videos" "$D/shards" --fps 2 --val-fraction 0.25 --shard-size 200 --workers 2
if [ ! -f "$D/run/epoch_${EPOCHS}.pt" ]; then
    RESUME=""
    [ -f "$D/run/latest.pt" ] && RESUME="--resume"
    $EGO train "$D/shards" "$D/run" --model ego-tiny-rn --epochs "$EPOCHS" --keep-epochs 1 $RESUME
fi
$EGO build "$D/run/latest.pt" "$D/shards" "$D/store"
echo
echo "query: the baby grabs the red ball (val videos only)"
$EGO query "$D/store" "the baby grabs the red ball" --k 5 --split val
echo
$EGO bench retrieval "$D/store" --out-dir "$D/bench"
$EGO bench mcq "$D/store" --generate 500 --seed 0 --out "$D/bench/mcq.json" --out-dir "$D/bench"
echo
echo "shards: $D/shards   training run: $D/run (curves.png, metrics.jsonl)   store: $D/store   reports: $D/bench"
echo "try:    $EGO query $D/store \"a yellow star spins around\" --level frames --k 5"
