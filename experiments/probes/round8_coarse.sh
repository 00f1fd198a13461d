#!/usr/bin/env bash
# Round 8 (issues 23 and 24): coarse-to-fine distillation (generator.coarse: that share of the 200 steps at half
# resolution, DeepInversion's multi-resolution scheme) against the default's images, validation split, seed 0,
# through the CLI as the benchmark runs it (pieces of experiments/benchmarks/round2_table.sh under
# logs/round8_coarse/<variant>; collected by `python experiments/probes/round7_collect.py logs/round8_coarse`). The
# default's own numbers are round 7's (round7_val.log, same code path); `default` here reruns two cells to check
# that they reproduce on this machine.
#   bash experiments/probes/round8_coarse.sh [torchvision|small|check]   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
run() {  # run VARIANT EXPERIMENT MODEL CELL METHOD [overrides...]
  SEEDS=0 ROUND2_DIR=logs/round8_coarse/$1 EXTRA="eval_split=val ${*:6}" EXPERIMENT=$2 THREADS=1 \
    PATH=".venv/bin:$PATH" bash experiments/benchmarks/round2_table.sh "$3" "$4" "$5"
}
case ${1:-torchvision} in
  torchvision)
    for cell in w2a4 w4a4; do run coarse75 torchvision mobilenet_v2_fmnist $cell default generator.coarse=0.75; done
    run coarse75 torchvision resnet18_fmnist w2a4 default generator.coarse=0.75 ;;
  small)
    for cell in w4a4 w2a4 w3a3; do run coarse75 round2 mobilenetv2_small $cell default generator.coarse=0.75; done
    for cell in w4a4 w2a4; do run coarse75 round2 resnet20 $cell default generator.coarse=0.75; done ;;
  check)
    run default round2 resnet20 w4a4 default
    run default torchvision mobilenet_v2_fmnist w2a4 default ;;
esac
