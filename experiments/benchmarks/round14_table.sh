#!/usr/bin/env bash
# The round-2 benchmark rerun on the round-14 default (issue 23; experiments/results/round14_tuning.md: distilled
# images clipped into the pixel range with a flat learned backdrop over about 0.3 of each), same command and cells
# (experiment=round2, test split, seeds 0-2), into logs/round14_table/multiruns; resumable pieces as round2_table.sh.
# Only the default and GPTQ (which runs on the default's images) run again: the closed forms, ZeroQ (its own
# images, pinned in conf/benchmark/method/zeroq.yaml) and the real-data ceiling did not change since round 11, whose
# runs are copied in (logs/round11_table, round11_checks.md). Then, on the torchvision benchmark, mobilenet_v2's
# learning cells (the default, 3 seeds; round 11's real-data runs copied in; "torchvision").
#   bash experiments/benchmarks/round14_table.sh [small|torchvision]      (default: both, in this order)
#   MODELS=resnet20 bash experiments/benchmarks/round14_table.sh small    (one model: two lanes on two cores)
#   PYTHONPATH=experiments/benchmarks python experiments/benchmarks/round3_checks.py logs/round14_table/multiruns \
#       --previous experiments/results/round11_checks.md --round 14 > experiments/results/round14_checks.md
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=".venv/bin:$PATH"
parts=${1:-"small torchvision"}
keep() {  # keep FROM TO METHOD...: round 11's finished sweeps of unchanged methods, copied once
  mkdir -p "$2"
  for method in "${@:3}"; do
    for dir in "$1"/*_"$method"; do
      [ -e "$2/$(basename "$dir")" ] || cp -r "$dir" "$2/"
    done
  done
}
if [[ $parts == *small* ]]; then
  keep logs/round11_table/multiruns logs/round14_table/multiruns rtn rtn_mse rtn_bc rtn_mse_bc zeroq real
  ROUND2_DIR=logs/round14_table/multiruns bash experiments/benchmarks/round2_table.sh "${MODELS:-resnet20 mobilenetv2_small}" \
    "${CELLS:-w8a8 w4a4 w3a8 w4a4_all w3a4 w3a3 w2a8 w2a4}" "default gptq"
fi
if [[ $parts == *torchvision* ]]; then
  keep logs/round11_table/torchvision logs/round14_table/torchvision real
  ROUND2_DIR=logs/round14_table/torchvision EXPERIMENT=torchvision bash experiments/benchmarks/round2_table.sh \
    mobilenet_v2_fmnist "${TV_CELLS:-w2a4 w4a4}" default
fi
