#!/usr/bin/env bash
# The round-2 benchmark rerun on the round-11 default (issue 23; experiments/results/round11_tuning.md), same command
# and cells (experiment=round2, test split, seeds 0-2), into logs/round11_table/multiruns; resumable pieces as
# round2_table.sh. Every method but "distilled" (the default's images since round 3) runs again: the closed forms and
# ZeroQ / GPTQ as controls (their code did not change; the images come from the cache the default fills), the
# real-data ceiling with the new layer settings (goal 3). Then, on the torchvision benchmark, the learning cells of
# mobilenet_v2 (the default and the real-data ceiling, 3 seeds; "torchvision").
#   bash experiments/benchmarks/round11_table.sh [small|torchvision]      (default: both, in this order)
#   PYTHONPATH=experiments/benchmarks python experiments/benchmarks/round3_checks.py logs/round11_table/multiruns \
#       --previous experiments/results/round6_checks.md --round 11 > experiments/results/round11_checks.md
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=".venv/bin:$PATH"
parts=${1:-"small torchvision"}
if [[ $parts == *small* ]]; then
  ROUND2_DIR=logs/round11_table/multiruns bash experiments/benchmarks/round2_table.sh "${MODELS:-resnet20 mobilenetv2_small}" \
    "${CELLS:-w8a8 w4a4 w3a8 w4a4_all w3a4 w3a3 w2a8 w2a4}" "rtn rtn_mse rtn_bc rtn_mse_bc default gptq zeroq real"
fi
if [[ $parts == *torchvision* ]]; then
  ROUND2_DIR=logs/round11_table/torchvision EXPERIMENT=torchvision bash experiments/benchmarks/round2_table.sh \
    mobilenet_v2_fmnist "${TV_CELLS:-w2a4 w4a4}" "${TV_METHODS:-default real}"
fi
