#!/usr/bin/env bash
# Round 13 (issue 23, round13_tuning.md §4): where the clipped images' bad seed loses. mobilenetv2_small W3A3 with
# generator.clip=true scored 87.84 at seed 0 and 85.26 at seed 1 (validation); seed 0's learned units, all of them or
# by depth, put into the seed-1 run (store_swap.py: every layer loaded, the base's command rerun on the validation
# split). The units were trained on different images (each seed distills its own), so this names the blocks whose
# solution differs, not why.
#   bash experiments/probes/round13_swap.sh > experiments/results/round13_swap.log
set -euo pipefail
cd "$(dirname "$0")/../.."
base=logs/round13/clip_s1/mobilenetv2_small_w3a3_default/0
donor=logs/round13/clip_s0/mobilenetv2_small_w3a3_default/0
for units in '.' 'features\.[0-4]\.' 'features\.[5-7]\.' 'features\.([8-9]|10)\.' 'features\.1[1-4]\.|classifier'; do
  echo "== $units"
  .venv/bin/python experiments/probes/store_swap.py --base "$base" --donor "$donor" --units "$units" seed=1 2>&1 | tail -n 1
done
