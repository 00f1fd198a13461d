#!/usr/bin/env bash
# Round 10 (issue 23, round10_tuning.md §2): mobilenetv2_small W3A3 on the same distilled images (seed 0) ends at
# 86.56 under solver seed 0 and 75.74 under solver seed 1. Bisect over the units whose learned state carries the
# difference: the collapsed run's store with the good run's units in place (and back), by store_swap.py. Needs the
# two runs of `ROUND_DIR=logs/round10 SEED=0|1 bash experiments/probes/round9_diversity.sh small-w3a3 img0` (the last
# part: seeds 1-4 of img0 and img0_st600).
#   bash experiments/probes/round10_swap.sh > experiments/results/round10_swap.log
set -euo pipefail
cd "$(dirname "$0")/../.."
bad=logs/round10/img0_s1/mobilenetv2_small_w3a3_default/0
good=logs/round10/img0_s0/mobilenetv2_small_w3a3_default/0
swap() { .venv/bin/python experiments/probes/store_swap.py --base "$bad" --donor "$good" "$@"; }
swap --units 'features\.3\.' --diff
swap --units '.'
swap --units 'features\.([0-9]|10)\.'
swap --units 'features\.1[1-4]|classifier'
swap --units 'features\.[0-4]\.'
swap --units 'features\.[5-7]\.'
swap --units 'features\.([89]|10)\.'
swap --units 'features\.3\.'
swap --units 'features\.4\.'
swap --units 'features\.3\.' --keys a_scale
swap --units 'features\.3\.' --keys layer.weight
echo "and back: the collapsed run's features.3 in the good run"
.venv/bin/python experiments/probes/store_swap.py --base "$good" --donor "$bad" --units 'features\.3\.'
echo "the 600-step runs' features.3 (img0_st600, the same images and solver seed) in the 300-step runs of solver seeds 1-4"
for s in 1 2 3 4; do
  .venv/bin/python experiments/probes/store_swap.py --base "logs/round10/img0_s$s/mobilenetv2_small_w3a3_default/0" \
    --donor "logs/round10/img0_st600_s$s/mobilenetv2_small_w3a3_default/0" --units 'features\.3\.'
done
