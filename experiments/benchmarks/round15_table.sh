#!/usr/bin/env bash
# The round-2 benchmark rerun after GPTQ learned to search its weight and input steps (issue 23 goal 5;
# experiments/results/round15_tuning.md), same command and cells (experiment=round2, test split, seeds 0-2), into
# logs/round15_table; resumable pieces as round2_table.sh. What the change can move runs again: GPTQ at every cell,
# and the default where rounding=auto solves layers by GPTQ (2-bit weights: w2a8, w2a4, and torchvision mobilenet_v2
# W2A4). Everything else is round 14's, copied in: the closed forms, ZeroQ and the real-data runs (unchanged since
# round 11) and the default at the cells with >= 3-bit weights (no GPTQ layer there; `check` reruns one of them).
#   bash experiments/benchmarks/round15_table.sh [small|torchvision|check]   (default: small then torchvision)
#   MODELS=resnet20 bash experiments/benchmarks/round15_table.sh small       (one model: two lanes on two cores)
#   PYTHONPATH=experiments/benchmarks python experiments/benchmarks/round3_checks.py logs/round15_table/multiruns \
#       --previous experiments/results/round14_checks.md --round 15 > experiments/results/round15_checks.md
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=".venv/bin:$PATH"
parts=${1:-"small torchvision"}
from=logs/round14_table
source experiments/benchmarks/keep.sh  # keep FROM TO PATTERN...: round 14's sweeps of what did not change
if [[ $parts == *small* ]]; then
  keep $from/multiruns logs/round15_table/multiruns "*_rtn" "*_rtn_mse" "*_rtn_bc" "*_rtn_mse_bc" "*_zeroq" "*_real" \
    "*_w8a8_default" "*_w4a4_default" "*_w3a8_default" "*_w4a4_all_default" "*_w3a4_default" "*_w3a3_default"
  ROUND2_DIR=logs/round15_table/multiruns bash experiments/benchmarks/round2_table.sh "${MODELS:-resnet20 mobilenetv2_small}" \
    "${CELLS:-w8a8 w4a4 w3a8 w4a4_all w3a4 w3a3 w2a8 w2a4}" "default gptq"
fi
if [[ $parts == *torchvision* ]]; then
  keep $from/torchvision logs/round15_table/torchvision "*_real" "*_w4a4_default"
  ROUND2_DIR=logs/round15_table/torchvision EXPERIMENT=torchvision bash experiments/benchmarks/round2_table.sh \
    mobilenet_v2_fmnist w2a4 default
fi
if [[ $parts == *check* ]]; then  # a copied default cell, rerun on this code: must give round 14's numbers
  SEEDS=0 ROUND2_DIR=logs/round15_table/check bash experiments/benchmarks/round2_table.sh resnet20 w4a4 default
fi
