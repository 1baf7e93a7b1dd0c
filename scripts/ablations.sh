#!/usr/bin/env bash
# The ablations of the learned scheduler, end to end: train each variant on `default` with the
# same budget and seed, then evaluate every variant on the same held-out seeds (1000-1019,
# never used in training) through the evaluation runner. Results in results/ablations/.
#   bash scripts/ablations.sh            # about 40 minutes on 2 cores
#   STEPS=500000 bash scripts/ablations.sh   # a shorter look
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
STEPS="${STEPS:-1500000}"
EPISODES="${EPISODES:-20}"
OUT=results/ablations
mkdir -p "$OUT"

train() {  # name, then extra arguments for `hierarchy train`
    local name=$1; shift
    [ -f "$OUT/$name/policy.json" ] && return 0
    local resume=()
    [ -f "$OUT/$name/checkpoint.pt" ] && resume=(--resume)  # an interrupted run goes on
    "$PYTHON" -m hierarchy train --scenario default --total-steps "$STEPS" --seed 0 \
        --out "$OUT/$name" --no-progress "${resume[@]}" "$@"
}

# Two trainings at a time, one torch thread each (the simulator itself is single-threaded).
train mappo --threads 1 & train ippo --algo ippo --threads 1 & wait
train no-features --set observation.behaviour_features=false --threads 1 &
train edge-only --cloud rule --threads 1 & wait
train node-scoring --edge-arch node-scoring --threads 1

common=(--scenario default --episodes "$EPISODES" --seed 1000 --no-progress)
"$PYTHON" -m hierarchy evaluate "${common[@]}" --out "$OUT/eval" \
    --policies "learned:$OUT/mappo,learned:$OUT/ippo,learned:$OUT/edge-only,learned:$OUT/node-scoring,power-aware-resize,power-aware,k8s-default"
# Without behaviour features the observation is another spec: the same workloads, its own run.
"$PYTHON" -m hierarchy evaluate "${common[@]}" --out "$OUT/eval-no-features" \
    --set observation.behaviour_features=false --policies "learned:$OUT/no-features,power-aware"
