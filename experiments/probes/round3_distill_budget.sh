#!/usr/bin/env bash
# Round 3 (issue 23, goal 4): how few distilled images will do for block units (layerwise.unit=block on ZeroQ
# images: generator=distilled, BN statistics only, 200 steps), which cost ~450 s for 256 images on one thread; the
# cost is linear in the image count. Validation split, seed 0, one thread; images kept in the probe cache (each
# count distilled once, reused by the other cells). Output appended to logs/round3/distill_budget.log.
#   bash experiments/probes/round3_distill_budget.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
source probe_lib.sh
mkdir -p ../../logs/round3
VARIANTS=("unit=block learn_input_scale=True generator.name='distilled' generator.num_images=64"
          "unit=block learn_input_scale=True generator.name='distilled' generator.num_images=128")
{
  probe mobilenetv2_small 3 3 --image-cache ../../data/cache/probe_images
  probe mobilenetv2_small 2 4 --image-cache ../../data/cache/probe_images
  probe mobilenetv2_small 4 4 --image-cache ../../data/cache/probe_images
} >> ../../logs/round3/distill_budget.log
# A second seed (new images, new layer-run streams) at the cell goal 1 turns on; output in logs/round3/seed1.log.
VARIANTS=("unit=block learn_input_scale=True generator.name='distilled' generator.num_images=128" rounding=auto)
probe mobilenetv2_small 4 4 --seed 1 --image-cache ../../data/cache/probe_images >> ../../logs/round3/seed1.log
VARIANTS=("unit=block learn_input_scale=True generator.name='distilled'")
probe mobilenetv2_small 4 4 --seed 1 --image-cache ../../data/cache/probe_images >> ../../logs/round3/seed1.log
VARIANTS=("unit=block learn_input_scale=True generator.name='distilled'" rounding=auto)
probe mobilenetv2_small 3 3 --seed 1 --image-cache ../../data/cache/probe_images >> ../../logs/round3/seed1.log
probe mobilenetv2_small 2 4 --seed 1 --image-cache ../../data/cache/probe_images >> ../../logs/round3/seed1.log
