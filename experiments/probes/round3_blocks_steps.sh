#!/usr/bin/env bash
# Round 3 (issue 23, goals 1-3): block units with joint learned input steps (layerwise.unit=block
# compressor.learn_input_scale=true, BRECQ + LSQ as GENIE) on propagated noise, distilled (ZeroQ) images and real
# images, against block units alone, validation split, seed 0, one thread (distilled images from the probe cache).
# Output appended to logs/round3/blocks.log; experiments/results/round3_tuning.md reads it.
#   bash experiments/probes/round3_blocks_steps.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
source probe_lib.sh
mkdir -p ../../logs/round3
VARIANTS=("unit=block learn_input_scale=True" "unit=block learn_input_scale=True generator.name='real'")
{
  probe mobilenetv2_small 4 4
  probe resnet20 4 4
  probe mobilenetv2_small 3 3
} >> ../../logs/round3/blocks.log
VARIANTS=("unit=block learn_input_scale=True generator.name='distilled'" "unit=block generator.name='distilled'"
          "unit=block learn_input_scale=True")
{
  probe mobilenetv2_small 4 4 --image-cache ../../data/cache/probe_images
  probe mobilenetv2_small 3 3 --image-cache ../../data/cache/probe_images
  probe mobilenetv2_small 2 4 --image-cache ../../data/cache/probe_images
  probe resnet20 4 4 --image-cache ../../data/cache/probe_images
  probe resnet20 2 4 --image-cache ../../data/cache/probe_images
  probe resnet20 3 3 --image-cache ../../data/cache/probe_images
  probe mobilenetv2_small 4 4 --all-layers --image-cache ../../data/cache/probe_images
  probe mobilenetv2_small 3 4 --image-cache ../../data/cache/probe_images
  probe mobilenetv2_small 8 8 --image-cache ../../data/cache/probe_images
  probe resnet20 8 8 --image-cache ../../data/cache/probe_images
} >> ../../logs/round3/blocks.log
# The round-2 cells not run above, candidate against today's default.
VARIANTS=("unit=block learn_input_scale=True generator.name='distilled'" rounding=auto)
{
  probe mobilenetv2_small 3 8 --image-cache ../../data/cache/probe_images
  probe mobilenetv2_small 2 8 --image-cache ../../data/cache/probe_images
  probe resnet20 3 4 --image-cache ../../data/cache/probe_images
  probe resnet20 4 4 --all-layers --image-cache ../../data/cache/probe_images
} >> ../../logs/round3/blocks.log
