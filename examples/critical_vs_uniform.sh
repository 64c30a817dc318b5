#!/usr/bin/env bash
# Fine-tune the shipped reference model twice with the same seed, once with the standard
# (uniform) KL penalty and once with the paper's prioritized (critical) one, each on one
# CPU core, then plot both curves. About 15 minutes on a 2-core machine.
set -euo pipefail
out=${1:-runs/critical-vs-uniform}
seed=${SEED:-0}
mkdir -p "$out"
for weighting in uniform critical; do
  OMP_NUM_THREADS=1 arith-rl train --out "$out/$weighting" --kl-weighting "$weighting" --seed "$seed" \
    > "$out/$weighting.log" 2>&1 &
done
wait
arith-rl plot "$out/uniform" "$out/critical" --out "$out/curves.png"
for weighting in uniform critical; do arith-rl eval "$out/$weighting"; done
