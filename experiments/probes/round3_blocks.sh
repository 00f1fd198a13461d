#!/usr/bin/env bash
# Round 3 (issue 23, goal 3): block units (layerwise.unit=block, BRECQ) against layer units, on propagated noise
# images (the data-free default) and on real training images (the ceiling), validation split, seed 0, one thread.
# Then the same blocks on distilled (ZeroQ) images, whose early activations are closer to real ones (images kept in
# the probe cache: distilled once per model and seed). Output appended to logs/round3/blocks.log;
# experiments/results/round3_tuning.md reads it. Joint learned input steps: round3_blocks_steps.sh.
#   bash experiments/probes/round3_blocks.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
source probe_lib.sh
mkdir -p ../../logs/round3
VARIANTS=(rounding=auto unit=block "generator.name='real'" "unit=block generator.name='real'")
{
  probe mobilenetv2_small 4 4
  probe mobilenetv2_small 3 3
  probe mobilenetv2_small 2 4
  probe resnet20 2 4
} >> ../../logs/round3/blocks.log
VARIANTS=("generator.name='distilled'" "unit=block generator.name='distilled'")
{
  probe mobilenetv2_small 2 4 --image-cache ../../data/cache/probe_images
  probe mobilenetv2_small 3 3 --image-cache ../../data/cache/probe_images
  probe mobilenetv2_small 4 4 --image-cache ../../data/cache/probe_images
} >> ../../logs/round3/blocks.log
