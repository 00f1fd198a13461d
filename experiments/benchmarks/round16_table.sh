#!/usr/bin/env bash
# The round-2 benchmark rerun after rounding=auto stopped learning the blocks of its GPTQ layers by AdaRound: a block
# that holds a 2-bit layer now runs layer by layer, each solved by GPTQ (issue 23; experiments/results/
# round16_tuning.md). Same command and cells (experiment=round2, test split, seeds 0-2), into logs/round16_table;
# resumable pieces as round2_table.sh. What the change can move runs again: the default at the cells with 2-bit
# weights (w2a8, w2a4 on both nets; torchvision mobilenet_v2 W2A4), and there the real-data runs, which run the
# default's solver on real images (goal 3: the ceiling goal 2 is measured against). Everything else is round 15's,
# copied in: the closed forms, ZeroQ, GPTQ (rounding=gptq never learned blocks), the real-data runs at the other
# cells and the default at the cells with >= 3-bit weights (no GPTQ layer there; `check` reruns one of them).
#   bash experiments/benchmarks/round16_table.sh [small|torchvision|check]   (default: small then torchvision)
#   MODELS=resnet20 bash experiments/benchmarks/round16_table.sh small       (one model: two lanes on two cores)
#   PYTHONPATH=experiments/benchmarks python experiments/benchmarks/round3_checks.py logs/round16_table/multiruns \
#       --previous experiments/results/round15_checks.md --round 16 > experiments/results/round16_checks.md
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=".venv/bin:$PATH"
parts=${1:-"small torchvision"}
from=logs/round15_table
source experiments/benchmarks/keep.sh  # keep FROM TO PATTERN...: round 15's sweeps of what did not change
if [[ $parts == *small* ]]; then
  keep $from/multiruns logs/round16_table/multiruns "*_rtn" "*_rtn_mse" "*_rtn_bc" "*_rtn_mse_bc" "*_zeroq" "*_gptq" \
    "*_w8a8_real" "*_w4a4_real" "*_w3a8_real" "*_w4a4_all_real" "*_w3a4_real" "*_w3a3_real" \
    "*_w8a8_default" "*_w4a4_default" "*_w3a8_default" "*_w4a4_all_default" "*_w3a4_default" "*_w3a3_default"
  ROUND2_DIR=logs/round16_table/multiruns bash experiments/benchmarks/round2_table.sh "${MODELS:-resnet20 mobilenetv2_small}" \
    "${CELLS:-w2a8 w2a4}" "default real"
fi
if [[ $parts == *torchvision* ]]; then
  keep $from/torchvision logs/round16_table/torchvision "*_w4a4_default"
  ROUND2_DIR=logs/round16_table/torchvision EXPERIMENT=torchvision bash experiments/benchmarks/round2_table.sh \
    mobilenet_v2_fmnist w2a4 "default real"
fi
if [[ $parts == *check* ]]; then  # a copied default cell, rerun on this code: must give round 15's numbers
  SEEDS=0 ROUND2_DIR=logs/round16_table/check bash experiments/benchmarks/round2_table.sh mobilenetv2_small w3a3 default
fi
