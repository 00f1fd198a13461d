#!/usr/bin/env bash
# Round 3 (issue 23, goal 4): how few distilled images will do. ZeroQ images (generator=distilled, BN statistics
# only, 200 steps) beat propagated noise at every mobilenetv2_small cell of round 2 but cost ~490 s for 256 images on
# one thread; the cost is linear in the image count. Validation split, seed 0, one thread; images kept in the probe
# cache (each count distilled once, reused by the other cells). Output appended to logs/round3/distill_budget.log.
#   bash experiments/round3_distill_budget.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
mkdir -p ../logs/round3
probe() {  # model, bits W A
  PYTHONPATH=. ../.venv/bin/python solver_probe.py --model "$1" --bits "$2" "$3" --threads 1 \
    --image-cache ../data/cache/probe_images \
    --variant "generator.name='distilled' generator.num_images=64" \
    --variant "generator.name='distilled' generator.num_images=128" 2>&1 | grep -v -i warn
}
{
  probe mobilenetv2_small 2 4
  probe mobilenetv2_small 3 3
  probe mobilenetv2_small 4 4
} >> ../logs/round3/distill_budget.log
