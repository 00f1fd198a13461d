#!/usr/bin/env bash
# The round-2 benchmark rerun on the round-3 default (issue 23: distilled images, block units, learned input steps),
# same command and cells (experiment=round2), into logs/round3/multiruns; resumable pieces as round2_table.sh. The
# "distilled" method is the default now and is not run again; "real data" and "GPTQ" run with the new defaults too
# (block units on real images: the higher ceiling of goal 3; GPTQ on the distilled images' second moments).
#   bash experiments/benchmarks/round3_table.sh [models] [cells] [methods]
#   PYTHONPATH=. python experiments/benchmarks/round3_checks.py logs/round3/multiruns > experiments/results/round3_checks.md
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUND2_DIR=${ROUND2_DIR:-logs/round3/multiruns} PATH=".venv/bin:$PATH" \
  bash experiments/benchmarks/round2_table.sh "${1:-resnet20 mobilenetv2_small}" "${2:-w8a8 w4a4 w3a8 w4a4_all w3a4 w3a3 w2a8 w2a4}" \
  "${3:-rtn rtn_mse rtn_bc rtn_mse_bc default zeroq gptq real}"
