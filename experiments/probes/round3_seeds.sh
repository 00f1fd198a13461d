#!/usr/bin/env bash
# Round 3 (issue 23, goal 1): seeds 1 and 2 of the candidate default (layerwise.unit=block,
# compressor.learn_input_scale=true, generator=distilled) at every round-2 cell, validation split, one thread; seed 0
# of 14 cells is in experiments/results/round3_blocks.log (`... 0` runs the other two). Resumable: a cell's output
# is appended to logs/round3/seeds.log only when it is whole, and a cell already there (or in round3_blocks.log) is
# skipped. Distilled images kept in the probe cache (once per model and seed).
#   bash experiments/probes/round3_seeds.sh [seeds]        (from the repository root; default "1 2")
set -uo pipefail
cd "$(dirname "$0")"
source probe_lib.sh
mkdir -p ../../logs/round3
log=../../logs/round3/seeds.log
VARIANTS=("unit=block learn_input_scale=True generator.name='distilled'")
DONE=(results/round3_blocks.log)  # seed 0 of 14 cells
for seed in ${1:-1 2}; do
  for model in mobilenetv2_small resnet20; do
    cell "$seed" "$model" 4 4
    cell "$seed" "$model" 3 3
    cell "$seed" "$model" 2 4
    cell "$seed" "$model" 4 4 --all-layers
    cell "$seed" "$model" 3 4
    cell "$seed" "$model" 3 8
    cell "$seed" "$model" 2 8
    cell "$seed" "$model" 8 8
  done
done
rm -f "$log.part"
