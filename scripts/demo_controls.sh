#!/usr/bin/env bash
# The trained demo model next to its two controls, on the same val videos, offline on CPU:
#   trained   the main demo's run (scripts/demo.sh, run first if needed)
#   shuffled  the same recipe with --shuffle-pairs (captions permuted across utterances, CVCL's control)
#   random    --epochs 0: the seeded, untrained model
# Each is built into a store and scored by the same benchmarks on the same trials and questions:
# utterance-frame alignment, 4-way forced choice on object categories from the val videos' ground
# truth (`demo-labeled`; one trials file for all three), EgoMCQ (the main demo's questions) and retrieval; `bench compare` puts them side by side in $D/compare-*.md. Rerunning reuses finished work.
set -euo pipefail
cd "$(dirname "$0")/.."
D="${DEMO_DIR:-demo}"
EPOCHS="${DEMO_EPOCHS:-5}"
[ -f "$D/run/epoch_${EPOCHS}.pt" ] || DEMO_DIR="$D" DEMO_EPOCHS="$EPOCHS" bash scripts/demo.sh
export HF_HUB_OFFLINE=1
EGO=.venv/bin/egoindex
if [ ! -f "$D/run-shuffled/epoch_${EPOCHS}.pt" ]; then
    RESUME=""
    [ -f "$D/run-shuffled/latest.pt" ] && RESUME="--resume"
    $EGO train "$D/shards" "$D/run-shuffled" --model ego-tiny-rn --epochs "$EPOCHS" --keep-epochs 1 --shuffle-pairs \
        --no-progress $RESUME
fi
[ -f "$D/run-random/epoch_0.pt" ] || $EGO train "$D/shards" "$D/run-random" --model ego-tiny-rn --epochs 0 --no-progress
$EGO build "$D/run-shuffled/latest.pt" "$D/shards" "$D/store-shuffled"
$EGO build "$D/run-random/latest.pt" "$D/shards" "$D/store-random"
$EGO demo-labeled "$D/labeled" --from "$D/videos" --shards "$D/shards" --split val
for m in trained shuffled random; do
    store="$D/store"; [ "$m" = trained ] || store="$D/store-$m"
    out="$D/bench-$m"
    $EGO bench alignment "$store" --out-dir "$out"
    if [ -f "$D/labeled/trials.json" ]; then TRIALS=(--trials-file "$D/labeled/trials.json")
    else TRIALS=(--trials-out "$D/labeled/trials.json"); fi
    $EGO bench forced-choice "$store" --labeled "$D/labeled" "${TRIALS[@]}" --out-dir "$out" -q
    $EGO bench mcq "$store" --egomcq "$D/bench/mcq.json" --out-dir "$out" --name egomcq
    $EGO bench retrieval "$store" --out-dir "$out"
done
for r in alignment forced_choice egomcq retrieval; do
    echo
    $EGO bench compare "$D/bench-trained/$r.json" "$D/bench-shuffled/$r.json" "$D/bench-random/$r.json" \
        --out "$D/compare-$r.md"
done
echo "reports: $D/bench-{trained,shuffled,random}; side by side: $D/compare-{alignment,forced_choice,egomcq,retrieval}.md"
