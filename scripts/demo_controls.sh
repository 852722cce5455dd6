#!/usr/bin/env bash
# The trained demo model next to its two controls, on the same val videos, offline on CPU:
#   trained   the main demo's run (scripts/demo.sh, run first if needed)
#   shuffled  the same recipe with --shuffle-pairs (captions permuted across utterances, CVCL's control)
#   random    --epochs 0: the seeded, untrained model
# Each is built into a store and scored by the same benchmarks on the same trials and questions:
# utterance-frame alignment, 4-way forced choice on categories from the val videos' ground truth
# (`demo-labeled --by object|colour|room|action`; one trials file per kind, shared by all three
# models; one frame cannot show an action, so that kind must stay at chance), EgoMCQ (the main
# demo's questions) and retrieval; `bench compare` puts them side by side, with paired differences
# against the trained model, in $D/compare-*.md. Rerunning reuses finished work.
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
KINDS=(object colour room action)
for by in "${KINDS[@]}"; do
    $EGO demo-labeled "$D/labeled-$by" --from "$D/videos" --shards "$D/shards" --split val --by "$by" -q
done
for m in trained shuffled random; do
    store="$D/store"; [ "$m" = trained ] || store="$D/store-$m"
    out="$D/bench-$m"
    $EGO bench alignment "$store" --out-dir "$out"
    for by in "${KINDS[@]}"; do
        lab="$D/labeled-$by"
        if [ -f "$lab/trials.json" ]; then TRIALS=(--trials-file "$lab/trials.json")
        else TRIALS=(--trials-out "$lab/trials.json"); fi
        $EGO bench forced-choice "$store" --labeled "$lab" "${TRIALS[@]}" --out-dir "$out" --name "forced_choice_$by" -q
    done
    $EGO bench mcq "$store" --egomcq "$D/bench/mcq.json" --out-dir "$out" --name egomcq
    $EGO bench retrieval "$store" --out-dir "$out"
done
for r in alignment forced_choice_object forced_choice_colour forced_choice_room forced_choice_action egomcq retrieval; do
    echo
    $EGO bench compare "$D/bench-trained/$r.json" "$D/bench-shuffled/$r.json" "$D/bench-random/$r.json" \
        --out "$D/compare-$r.md"
done
echo "reports: $D/bench-{trained,shuffled,random}; side by side: $D/compare-{alignment,forced_choice_*,egomcq,retrieval}.md"
