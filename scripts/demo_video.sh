#!/usr/bin/env bash
# Frame model vs clip-level video model on the same val videos, offline on CPU.
#
# The motion corpus (`egoindex demo-data --motion`: objects that slide left/right, rise or sink,
# narrated in an EgoClip-format file, no Whisper) is ingested with its clip shards; a frame model
# (ego-tiny-rn, InfoNCE) and, from it, a clip model (ego-tiny-rn-video, EgoNCE with scene-aware
# negatives and the EgoMCQ curve during training) are trained on the same train videos; a store is built from each;
# then the same benchmarks on the same val videos: retrieval, EgoMCQ (one question file for both) and
# the motion-direction questions, side by side (`bench compare`). Everything lands in ./demo-video
# (override with DEMO_DIR); rerunning reuses finished work.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
D="${DEMO_DIR:-demo-video}"
EGO=.venv/bin/egoindex
FRAME_EPOCHS="${FRAME_EPOCHS:-5}"
CLIP_EPOCHS="${CLIP_EPOCHS:-15}"
$EGO demo-data "$D/videos" --motion --videos 48
$EGO ingest "$D/videos" "$D/shards" --transcripts "$D/videos/narrations.tsv" --no-whisper --allow-no-audio \
    --fps 4 --val-fraction 0.25 --shard-size 200
train() {  # RUN_DIR EPOCHS ARGS...: train, or resume an unfinished run, or nothing when finished
    local run="$1" epochs="$2"; shift 2
    [ -f "$run/epoch_${epochs}.pt" ] && return 0
    local resume=""
    [ -f "$run/latest.pt" ] && resume="--resume"
    $EGO train "$D/shards" "$run" --epochs "$epochs" --keep-epochs 1 --no-progress --log-every 50 $resume "$@"
}
train "$D/run-frame" "$FRAME_EPOCHS" --model ego-tiny-rn --batch-size 32 --lr 1e-3
# the clip model starts as the frame model (its towers, a zero temporal head), as EgoVLP starts from
# pretrained towers; then EgoNCE on clips of 4 frames
train "$D/run-clip" "$CLIP_EPOCHS" --model ego-tiny-rn-video --init "$D/run-frame/latest.pt" --loss egonce \
    --batch-size 16 --lr 5e-4 --val-egomcq generate
for m in frame clip; do
    $EGO build "$D/run-$m/latest.pt" "$D/shards" "$D/store-$m"
done
[ -f "$D/motion_questions.json" ] || GEN=(--generate-from "$D/videos/ground_truth.json")
for m in frame clip; do
    $EGO bench retrieval "$D/store-$m" --out-dir "$D/bench-$m"
    if [ ! -f "$D/mcq_questions.json" ]; then
        $EGO bench mcq "$D/store-$m" --generate 200 --seed 0 --out "$D/mcq_questions.json" --out-dir "$D/bench-$m" \
            --name egomcq
    else
        $EGO bench mcq "$D/store-$m" --egomcq "$D/mcq_questions.json" --out-dir "$D/bench-$m" --name egomcq
    fi
    $EGO bench motion "$D/store-$m" --questions "$D/motion_questions.json" "${GEN[@]}" --videos "$D/videos" \
        --out-dir "$D/bench-$m"
    GEN=()
done
for r in retrieval egomcq motion; do
    echo
    $EGO bench compare "$D/bench-frame/$r.json" "$D/bench-clip/$r.json" --out "$D/compare-$r.md"
done
echo "reports: $D/bench-frame $D/bench-clip, side by side: $D/compare-{retrieval,egomcq,motion}.md"
