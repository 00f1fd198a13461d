#!/usr/bin/env bash
# Round 4 (issue 23, goals 2 and 4): the round-3 default's solver (block units, learned input steps) on GENIE's
# images (generator=genie: a generator network with learned latents, swing 1, 200 steps) instead of per-pixel
# distilled ones, validation split, one thread; mobilenetv2_small's eight cells at seed 0, its gap cells at seeds
# 1-2, then resnet20. Resumable as round3_seeds.sh (a cell is appended to logs/round4/genie.log when whole).
#   bash experiments/probes/round4_genie.sh            (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
source probe_lib.sh
mkdir -p ../../logs/round4
log=../../logs/round4/genie.log
VARIANTS=("unit=block learn_input_scale=True generator.name='genie'")
for model in mobilenetv2_small; do
  cell 0 "$model" 3 3; cell 0 "$model" 4 4 --all-layers; cell 0 "$model" 3 4; cell 0 "$model" 4 4
  cell 0 "$model" 2 4; cell 0 "$model" 2 8; cell 0 "$model" 3 8
done
for seed in 1 2; do
  cell "$seed" mobilenetv2_small 3 3; cell "$seed" mobilenetv2_small 4 4 --all-layers; cell "$seed" mobilenetv2_small 3 4
done
for seed in 0 1 2; do
  cell "$seed" resnet20 3 3; cell "$seed" resnet20 4 4; cell "$seed" resnet20 2 4
done
rm -f "$log.part"
