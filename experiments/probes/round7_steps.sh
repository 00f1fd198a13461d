#!/usr/bin/env bash
# Round 7 (issue 23): twice the distillation steps (generator.steps=400 instead of 200) against the default, validation
# split, through the CLI as the benchmark runs it (round7_val.sh's conventions: logs/round7_val/<variant>[_s<seed>]/,
# top1 in each summary.json). Its W2A4 torchvision MobileNetV2 run (seed 0) is round7_val.sh data-torchvision's.
#   bash experiments/probes/round7_steps.sh [torchvision|small] [seed]        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
seed=${2:-0}
suffix=$([ "$seed" = 0 ] || echo "_s$seed")
run() {  # run VARIANT EXPERIMENT MODEL CELL [overrides...]
  SEEDS=$seed ROUND2_DIR=logs/round7_val/$1$suffix EXTRA="eval_split=val ${*:5}" EXPERIMENT=$2 THREADS=1 \
    PATH=".venv/bin:$PATH" bash experiments/benchmarks/round2_table.sh "$3" "$4" default
}
pair() {  # pair EXPERIMENT MODEL CELL: the default and the candidate (the default's runs are shared with round7_val.sh)
  run default "$@"
  run steps400 "$@" generator.steps=400
}
case ${1:-torchvision} in
  torchvision) for cell in w2a4 w4a4 w4a4_all; do pair torchvision mobilenet_v2_fmnist $cell; done ;;
  small) for model in mobilenetv2_small resnet20; do for cell in w2a4 w3a3 w4a4; do pair round2 $model $cell; done; done ;;
esac
