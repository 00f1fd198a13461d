#!/usr/bin/env bash
# Round 3 (issue 23, goal 1): does learning pay where round-to-nearest broke little? The default against
# layerwise.learn_above=None (always learn) at W6A8, where the gate (learn_above=2e-3, layerwise/gate.py) keeps
# the closed form, validation split, seeds 0-2, one thread; W8A8's are in round3_tuning.md §6. Resumable as
# round3_seeds.sh; output appended to logs/round3/gate.log.
#   bash experiments/probes/round3_gate.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
source probe_lib.sh
mkdir -p ../../logs/round3
log=../../logs/round3/gate.log
VARIANTS=("learn_above=None")
for seed in 0 1 2; do
  for model in resnet20 mobilenetv2_small; do
    cell "$seed" "$model" 6 8
  done
done
rm -f "$log.part"
