#!/usr/bin/env bash
# Round 5 (issue 23): half of GENIE's chunks replaced by per-pixel distilled ones (generator.pixel_fraction=0.5:
# 128 network images, 128 as generator=distilled makes them) on the small nets, validation split, one thread, at
# the cells of round5_refine.sh (genie alone there; distilled alone in round4_genie.log / round3's logs).
# Resumable as round4_genie.sh (logs/round5/mixed.log).
#   bash experiments/probes/round5_mixed.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
source probe_lib.sh
mkdir -p ../../logs/round5
log=../../logs/round5/mixed.log
solver="unit=block learn_input_scale=True"
VARIANTS=("$solver generator.name='genie' generator.pixel_fraction=0.5" "$solver generator.name='distilled'")
cell 0 mobilenetv2_small 4 4 --all-layers
cell 0 resnet20 4 4
cell 0 mobilenetv2_small 3 3
cell 1 mobilenetv2_small 3 3
cell 0 resnet20 2 4
rm -f "$log.part"
