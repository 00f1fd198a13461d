#!/usr/bin/env bash
# Round 7 (issue 23): what closes the W2A4 gap on torchvision MobileNetV2 (default 84.99 on test, GPTQ on the same
# images 87.65, real data 91.39) -- the solver on the same cached distilled images, validation split, through the CLI
# as the benchmark runs it (resumable pieces of experiments/benchmarks/round2_table.sh under logs/round7_val/<variant>;
# top1 in each summary.json, collected by round7_collect in round7_tuning.md).
#   bash experiments/probes/round7_val.sh [torchvision|small|qdrop-torchvision|qdrop-small|data-torchvision]
# (from the repository root). The qdrop parts: QDrop (layerwise.drop_prob=0.5) against the default at the learning
# cells with <= 4-bit inputs; data-torchvision: twice the distillation steps, twice the images at the W2A4 cell.
set -euo pipefail
cd "$(dirname "$0")/../.."
run() {  # run VARIANT EXPERIMENT MODEL CELL METHOD [overrides...]   (SEEDS: default 0)
  SEEDS=${SEEDS:-0} ROUND2_DIR=logs/round7_val/$1 EXTRA="eval_split=val ${*:6}" EXPERIMENT=$2 THREADS=1 \
    PATH=".venv/bin:$PATH" bash experiments/benchmarks/round2_table.sh "$3" "$4" "$5"
}
variants() {  # variants EXPERIMENT MODEL CELL
  run rtn "$@" rtn
  run default "$@" default
  run drop05 "$@" default layerwise.drop_prob=0.5
  run layer "$@" default layerwise.unit=layer
  run gptq "$@" gptq
  run real "$@" real
}
qdrop() {  # qdrop EXPERIMENT MODEL CELL   (a seed other than 0 runs under <variant>_s<seed>)
  local s=${SEEDS:+_s$SEEDS}; s=${s/_s0/}
  run default$s "$@" default
  run drop05$s "$@" default layerwise.drop_prob=0.5
}
case ${1:-torchvision} in
  torchvision) variants torchvision mobilenet_v2_fmnist w2a4 ;;
  small) for cell in w2a4 w3a3; do variants round2 mobilenetv2_small $cell; done ;;
  qdrop-torchvision)
    for cell in w4a4 w4a4_all; do qdrop torchvision mobilenet_v2_fmnist $cell; done
    qdrop torchvision resnet18_fmnist w2a4
    SEEDS=1 qdrop torchvision mobilenet_v2_fmnist w2a4 ;;
  qdrop-small)
    for cell in w4a4 w4a4_all w3a4; do qdrop round2 mobilenetv2_small $cell; done
    for cell in w4a4 w3a3 w2a4; do qdrop round2 resnet20 $cell; done
    SEEDS=1 qdrop round2 mobilenetv2_small w2a4 ;;
  data-torchvision)
    run steps400 torchvision mobilenet_v2_fmnist w2a4 default generator.steps=400
    run images512 torchvision mobilenet_v2_fmnist w2a4 default generator.num_images=512 ;;
esac
