#!/usr/bin/env bash
# Round 3 (issue 23, goals 1-3): block units with joint learned input steps (layerwise.unit=block
# compressor.learn_input_scale=true, BRECQ + LSQ as GENIE) on propagated noise, distilled (ZeroQ) images and real
# images, against block units alone, validation split, seed 0, one thread (distilled images from the probe cache).
# Output appended to logs/round3/blocks.log; experiments/results/round3_tuning.md reads it.
#   bash experiments/round3_blocks_steps.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
mkdir -p ../logs/round3
probe() {  # model, bits W A, extra args
  PYTHONPATH=. ../.venv/bin/python solver_probe.py --model "$1" --bits "$2" "$3" --threads 1 "${@:4}" \
    --image-cache ../data/cache/probe_images \
    --variant "unit=block learn_input_scale=True generator.name='distilled'" \
    --variant "unit=block generator.name='distilled'" --variant "unit=block learn_input_scale=True" \
    2>&1 | grep -v -i warn
}
{
  probe mobilenetv2_small 4 4
  probe mobilenetv2_small 3 3
  probe mobilenetv2_small 2 4
  probe resnet20 4 4
  probe resnet20 2 4
  probe resnet20 3 3
  probe mobilenetv2_small 4 4 --all-layers
  probe mobilenetv2_small 3 4
  probe mobilenetv2_small 8 8
  probe resnet20 8 8
} >> ../logs/round3/blocks.log
