#!/usr/bin/env bash
# The benchmark of issue 24 (experiment=torchvision): torchvision resnet18 / mobilenet_v2 trained here on Fashion-MNIST
# at 64x64x3, cells W8A8 W4A4 W3A8 W4A4-all W2A4, the round-2 methods; resumable pieces as experiments/benchmarks/round2_table.sh.
#   bash experiments/benchmarks/torchvision_table.sh [models] [cells] [methods]
#   lwcompress-report logs/torchvision/multiruns --by labels.cell --columns labels.method --wall \
#       --out experiments/results/torchvision
set -euo pipefail
cd "$(dirname "$0")/../.."
EXPERIMENT=torchvision ROUND2_DIR=${ROUND2_DIR:-logs/torchvision/multiruns} PATH=".venv/bin:$PATH" \
  bash experiments/benchmarks/round2_table.sh "${1:-resnet18_fmnist mobilenet_v2_fmnist}" "${2:-w8a8 w4a4 w3a8 w4a4_all w2a4}" \
  "${3:-rtn rtn_mse rtn_bc rtn_mse_bc default gptq distilled zeroq real}"
