#!/usr/bin/env bash
# Round 3 (issue 23, goal 3): block units on distilled (ZeroQ) images, whose early activations are closer to real
# ones than propagated noise's, at the mobilenetv2_small cells where the domain decides (validation split, seed 0,
# one thread; the images come from the probe cache the earlier round-3 probes filled, or are distilled once).
# Output appended to logs/round3/blocks.log; experiments/results/round3_tuning.md reads it.
#   bash experiments/round3_blocks_distilled.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
mkdir -p ../logs/round3
probe() {  # model, bits W A, extra args
  PYTHONPATH=. ../.venv/bin/python solver_probe.py --model "$1" --bits "$2" "$3" --threads 1 "${@:4}" \
    --image-cache ../data/cache/probe_images \
    --variant "generator.name='distilled'" --variant "unit=block generator.name='distilled'" 2>&1 | grep -v -i warn
}
{
  probe mobilenetv2_small 2 4
  probe mobilenetv2_small 3 3
  probe mobilenetv2_small 4 4
} >> ../logs/round3/blocks.log
