#!/usr/bin/env bash
# Round 12 (issue 23, round12_tuning.md): where mobilenetv2_small W3A3's gap to real data lives. The real-data run's
# learned units put into the data-free default's run of the same seed (both from round 11's test table, seed 0, made
# at 72d4c00 on today's default settings; their layers do not depend on the split they were scored on), all of them
# or by depth, and their activation grids apart from their weights; each swap reruns the base's command with every
# layer loaded, scored on the validation split (store_swap.py). The first two lines are the two runs themselves
# scored on validation.
#   bash experiments/probes/round12_swap.sh > experiments/results/round12_swap.log
set -euo pipefail
cd "$(dirname "$0")/../.."
synthetic=logs/round11_table/multiruns/mobilenetv2_small_w3a3_default/0
real=logs/round11_table/multiruns/mobilenetv2_small_w3a3_real/0
swap() { echo "== $*"; .venv/bin/python experiments/probes/store_swap.py --donor "$real" "$@" eval_split=val seed=0 2>&1 | tail -n 1; }
swap --base "$synthetic" --units '.' --donor "$synthetic"
swap --base "$synthetic" --units '.'
swap --base "$synthetic" --units '.' --keys a_scale,a_zero_point
swap --base "$synthetic" --units '.' --keys layer.weight,layer.bias,w_scale,w_zero_point
swap --base "$synthetic" --units 'features\.[0-4]\.'
swap --base "$synthetic" --units 'features\.([5-9]|10)\.'
swap --base "$synthetic" --units 'features\.1[1-4]\.|classifier'
swap --base "$synthetic" --units 'features\.[0-7]\.'
swap --base "$synthetic" --units 'features\.([0-9]|10)\.'
# torchvision mobilenet_v2 W2A4 (its round-11 test-table runs, seed 0; experiment=torchvision), the same question
synthetic=logs/round11_table/torchvision/mobilenet_v2_fmnist_w2a4_default/0
real=logs/round11_table/torchvision/mobilenet_v2_fmnist_w2a4_real/0
swap --base "$synthetic" --units '.' --donor "$synthetic"
swap --base "$synthetic" --units '.'
swap --base "$synthetic" --units 'features\.[1-6]\.'
swap --base "$synthetic" --units 'features\.([1-9]|10)\.'
swap --base "$synthetic" --units 'features\.1[1-8]\.|classifier'
