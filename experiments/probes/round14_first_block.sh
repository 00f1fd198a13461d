#!/usr/bin/env bash
# Round 14 (issue 23, round14_tuning.md §1): what tells a good first learned block from a bad one without data?
# mobilenetv2_small W3A3 on clipped distilled images (round 13's clip runs, seeds 0-4), the seed-1 run with every
# other seed's features.3 (round13_swap.sh's swaps, kept as models), the data-free default and the real-data run
# (round 11's test-table runs of seed 0) and this round's clip + backdrop 0.5 runs (seeds 0-1), each saved as a model
# (save_run.sh), then read by first_block_probe.py.
#   bash experiments/probes/round14_first_block.sh > experiments/results/round14_first_block.log
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/round14_first_block}
source experiments/probes/save_run.sh
clip=logs/round13/clip_s%d/mobilenetv2_small_w3a3_default/0
runs=()
for s in 0 1 2 3 4; do
  # shellcheck disable=SC2059
  save "clip_s$s" "$(printf $clip $s)" $s && runs+=("clip_s$s=$out/clip_s$s/0")
done
for s in 0 2 3 4; do
  # shellcheck disable=SC2059
  save "clip_s1_with_s${s}_features3" "$(printf $clip 1)" 1 "$(printf $clip $s)" features.3 \
    && runs+=("clip_s1_with_s${s}_features3=$out/clip_s1_with_s${s}_features3/0")
done
save default logs/round11_table/multiruns/mobilenetv2_small_w3a3_default/0 0 && runs+=("default=$out/default/0")
save real logs/round11_table/multiruns/mobilenetv2_small_w3a3_real/0 0 && runs+=("real=$out/real/0")
for s in 0 1; do
  save "clip_backdrop05_s$s" "logs/round14/clip_bd05_s$s/mobilenetv2_small_w3a3_default/0" $s \
    && runs+=("clip_backdrop05_s$s=$out/clip_backdrop05_s$s/0")
done
.venv/bin/python experiments/probes/first_block_probe.py "${runs[@]}" 2>&1 | grep -v -i warn
