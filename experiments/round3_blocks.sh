#!/usr/bin/env bash
# Round 3 (issue 23, goal 3): block units (layerwise.unit=block, BRECQ) against layer units, on propagated noise
# images (the data-free default) and on real training images (the ceiling), validation split, seed 0, one thread.
# Output appended to logs/round3/blocks.log; experiments/results/round3_tuning.md reads it.
#   bash experiments/round3_blocks.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")"
mkdir -p ../logs/round3
probe() {  # model, bits W A, extra args
  PYTHONPATH=. ../.venv/bin/python solver_probe.py --model "$1" --bits "$2" "$3" --threads 1 "${@:4}" \
    --variant rounding=auto --variant unit=block \
    --variant "generator.name='real'" --variant "unit=block generator.name='real'" 2>&1 | grep -v -i warn
}
{
  probe mobilenetv2_small 4 4
  probe mobilenetv2_small 3 3
  probe mobilenetv2_small 2 4
  probe resnet20 2 4
} >> ../logs/round3/blocks.log
# Joint learned input steps inside the blocks (BRECQ + LSQ, as GENIE): where layer-wise learned steps helped
# (mobilenetv2_small W4A4), hurt (resnet20 W4A4) and were unstable (mobilenetv2_small W3A3).
steps() {  # model, bits W A
  PYTHONPATH=. ../.venv/bin/python solver_probe.py --model "$1" --bits "$2" "$3" --threads 1 \
    --variant "unit=block learn_input_scale=True" \
    --variant "unit=block learn_input_scale=True generator.name='real'" 2>&1 | grep -v -i warn
}
{
  steps mobilenetv2_small 4 4
  steps resnet20 4 4
  steps mobilenetv2_small 3 3
} >> ../logs/round3/blocks.log
