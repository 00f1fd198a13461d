#!/usr/bin/env bash
# Round 3 (issue 23, goals 4-5): fewer distillation steps for the round-3 default (256 images; 200 Adam steps per
# chunk today, cosine from lr 0.25). Each step is a forward and backward pass of the whole network, so the cost is
# linear in the steps. Validation split, one thread, seeds 0 and 1 at the cells where the images matter most;
# images kept in the probe cache. Output appended to logs/round3/distill_steps.log.
#   bash experiments/probes/round3_distill_steps.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
source probe_lib.sh
mkdir -p ../../logs/round3
VARIANTS=("generator.steps=100" "generator.steps=50")
for seed in 0 1; do
  for cell in "3 3" "2 4" "4 4"; do
    # shellcheck disable=SC2086
    probe mobilenetv2_small $cell --seed "$seed" --image-cache ../../data/cache/probe_images >> ../../logs/round3/distill_steps.log
  done
done
