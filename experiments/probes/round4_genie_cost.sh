#!/usr/bin/env bash
# Round 4 (issue 23, goal 4): what GENIE's images cost and what of them matters, validation split, one thread, at
# mobilenetv2_small W3A3 (seeds 0, 1) and W4A4 all layers (seed 0): a narrower generator network (width 64), half
# the steps, both, and swing alone on per-pixel distilled images. Resumable as round4_genie.sh
# (logs/round4/genie_cost.log).
#   bash experiments/probes/round4_genie_cost.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
source probe_lib.sh
mkdir -p ../../logs/round4
log=../../logs/round4/genie_cost.log
solver="unit=block learn_input_scale=True"
VARIANTS=("$solver generator.name='genie' generator.width=64" "$solver generator.name='genie' generator.steps=100"
          "$solver generator.name='genie' generator.width=64 generator.steps=100"
          "$solver generator.name='distilled' generator.swing=1")
cell 0 mobilenetv2_small 3 3
cell 1 mobilenetv2_small 3 3
cell 0 mobilenetv2_small 4 4 --all-layers
rm -f "$log.part"
