#!/usr/bin/env bash
# The round-2 benchmark rerun after rounding=auto began to solve layers of up to 3-bit weights by GPTQ
# (compressor.auto_gptq_wbits=3; issue 23; experiments/results/round17_tuning.md). Same command and cells
# (experiment=round2, test split, seeds 0-2), into logs/round17_table; resumable pieces as round2_table.sh. What the
# change can move runs again: the default and the real-data runs (the default's solver on real images) at the cells
# with 3-bit weights (w3a8, w3a4, w3a3 on both nets). Everything else is round 16's, copied in (the 2-bit cells
# already were GPTQ's; >= 4-bit cells have no GPTQ layer; `check` reruns a copied 2-bit cell).
#   bash experiments/benchmarks/round17_table.sh [small|check]              (default: small)
#   MODELS=resnet20 bash experiments/benchmarks/round17_table.sh small       (one model: two lanes on two cores)
#   PYTHONPATH=experiments/benchmarks python experiments/benchmarks/round3_checks.py logs/round17_table/multiruns \
#       --previous experiments/results/round16_checks.md --round 17 > experiments/results/round17_checks.md
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=".venv/bin:$PATH"
parts=${1:-small}
from=logs/round16_table
source experiments/benchmarks/keep.sh  # keep FROM TO PATTERN...: round 16's sweeps of what did not change
if [[ $parts == *small* ]]; then
  keep $from/multiruns logs/round17_table/multiruns "*_rtn" "*_rtn_mse" "*_rtn_bc" "*_rtn_mse_bc" "*_zeroq" "*_gptq" \
    "*_w8a8_*" "*_w4a4_*" "*_w2a8_*" "*_w2a4_*"
  ROUND2_DIR=logs/round17_table/multiruns bash experiments/benchmarks/round2_table.sh "${MODELS:-resnet20 mobilenetv2_small}" \
    "${CELLS:-w3a8 w3a4 w3a3}" "default real"
fi
if [[ $parts == *check* ]]; then  # a copied default cell, rerun on this code: must give round 16's numbers
  SEEDS=0 ROUND2_DIR=logs/round17_table/check bash experiments/benchmarks/round2_table.sh mobilenetv2_small w2a4 default
fi
