#!/usr/bin/env bash
# Round 5 (issue 23): GENIE's images refined as pixels (generator.refine_steps at refine_lr 0.05) on the small nets,
# validation split, one thread: does the refinement keep genie's gains where it won (mobilenetv2_small W3A3 seeds
# 0, 1; W4A4 all layers seed 0; resnet20 W4A4 and W2A4 seed 0; genie alone first, as in round 4)? The torchvision cells run through the CLI (round5_tuning.md).
# Resumable as round4_genie.sh (logs/round5/refine.log).
#   bash experiments/probes/round5_refine.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
source probe_lib.sh
mkdir -p ../../logs/round5
log=../../logs/round5/refine.log
solver="unit=block learn_input_scale=True"
VARIANTS=("$solver generator.name='genie'" "$solver generator.name='genie' generator.refine_steps=50" "$solver generator.name='genie' generator.refine_steps=100")
cell 0 mobilenetv2_small 3 3
cell 1 mobilenetv2_small 3 3
cell 0 mobilenetv2_small 4 4 --all-layers
cell 0 resnet20 4 4
cell 0 resnet20 2 4
rm -f "$log.part"
