#!/usr/bin/env bash
# Round 6 (issue 23): the default (generator=distilled) against its round-to-nearest start on torchvision's networks
# at the saturated cells, validation split (eval_split=val), through the CLI as the benchmark runs them
# (experiment=torchvision, one thread, one job at a time; resumable pieces of experiments/benchmarks/round2_table.sh
# under logs/round6_val/<variant>); top1 and rtn_top1 in each run's summary.json (round6_tuning.md quotes them).
# Seed 0's W4A4 runs are round 5's (logs/round5_val/{rtn,distilled}).
#   bash experiments/probes/round6_torchvision_val.sh        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
run() {  # run VARIANT SEEDS MODEL CELL METHOD [overrides...]
  SEEDS=$2 ROUND2_DIR=logs/round6_val/$1 EXTRA="eval_split=val ${*:6}" EXPERIMENT=torchvision THREADS=1 \
    PATH=".venv/bin:$PATH" bash experiments/benchmarks/round2_table.sh "$3" "$4" "$5"
}
for cell in w4a4_all w3a8; do
  for model in mobilenet_v2_fmnist resnet18_fmnist; do
    run rtn 0 $model $cell rtn
    run default 0 $model $cell default
  done
done
