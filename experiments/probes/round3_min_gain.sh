#!/usr/bin/env bash
# Round 3 (issue 23): layerwise.min_gain against the default at every round-2 cell, validation split, seed 0, one
# thread. Output appended to logs/round3/min_gain.log; experiments/results/round3_tuning.md reads it.
#   bash experiments/probes/round3_min_gain.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
source probe_lib.sh
mkdir -p ../../logs/round3
VARIANTS=(rounding=auto min_gain=0.1 min_gain=0.2)
{
  probe mobilenetv2_small 4 4 --all-layers
  probe mobilenetv2_small 3 4
  probe resnet20 3 3
  probe mobilenetv2_small 3 8
  probe resnet20 3 8
  probe mobilenetv2_small 2 4
  probe resnet20 2 4
  probe mobilenetv2_small 8 8
  probe resnet20 8 8
  probe mobilenetv2_small 2 8
  probe resnet20 4 4 --all-layers
  probe resnet20 3 4
  probe resnet20 2 8
} >> ../../logs/round3/min_gain.log
