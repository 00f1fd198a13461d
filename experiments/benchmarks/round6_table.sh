#!/usr/bin/env bash
# Round 6 (issue 23): the benchmarks on the default with the network-level gate (layerwise.min_headroom). Only the
# learned methods at the cells where the gate measured a round-to-nearest network within min_headroom of FP on some
# seed run again (experiments/results/round6_tuning.md: torchvision resnet18 W4A4 and W4A4 all layers), and resnet20
# W4A4, the cell closest above it, as the check that a run the gate passes is the run before; everywhere else the
# gate measures and passes, and the earlier runs are linked in (the same code for them, the same checkpoints). Also what issue 24's torchvision table still lacked: the
# default's seeds 1 and 2 at W2A4, the real-data ceiling at MobileNetV2 W3A8, one seed of the other methods at W4A4
# all layers and resnet18 W3A8 ("columns"). Resumable pieces as round2_table.sh.
#   bash experiments/benchmarks/round6_table.sh [small|torchvision|seeds|columns]     (default: all, in this order)
#   PYTHONPATH=experiments/benchmarks python experiments/benchmarks/round3_checks.py logs/round6/multiruns \
#       --previous experiments/results/round3_checks.md > experiments/results/round6_checks.md
#   lwcompress-report logs/torchvision_round6/multiruns --by labels.cell --columns labels.method --wall \
#       --out experiments/results/torchvision
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=".venv/bin:$PATH"
link() {  # link OLD_ROOT NEW_ROOT EXCLUDED_DIR_NAMES...: the earlier runs, but the ones to redo
  mkdir -p "$2"
  for old in "$1"/*; do
    name=$(basename "$old")
    case " ${*:3} " in *" $name "*) continue ;; esac
    [ -e "$2/$name" ] || ln -s "$(realpath "$old")" "$2/$name"
  done
}
parts=${1:-"small torchvision seeds columns"}
if [[ $parts == *small* ]]; then
  link logs/round3/multiruns logs/round6/multiruns resnet20_w4a4_default resnet20_w4a4_gptq resnet20_w4a4_real
  ROUND2_DIR=logs/round6/multiruns bash experiments/benchmarks/round2_table.sh resnet20 w4a4 "default gptq real"
fi
tv=logs/torchvision_round6/multiruns
if [[ $parts == *torchvision* ]]; then
  redo=""
  for cell in w4a4 w4a4_all; do
    for method in default gptq distilled real; do redo="$redo resnet18_fmnist_${cell}_$method"; done
  done
  link logs/torchvision/multiruns $tv $redo mobilenet_v2_fmnist_w3a8_real
  # the default and the real-data ceiling on three seeds, GPTQ and distilled on one (as the earlier table)
  ROUND2_DIR=$tv EXPERIMENT=torchvision bash experiments/benchmarks/round2_table.sh resnet18_fmnist "w4a4 w4a4_all" \
    "default real"
  SEEDS=0 ROUND2_DIR=$tv EXPERIMENT=torchvision bash experiments/benchmarks/round2_table.sh resnet18_fmnist \
    "w4a4 w4a4_all" "gptq distilled"
fi
if [[ $parts == *seeds* ]]; then
  ROUND2_DIR=$tv EXPERIMENT=torchvision bash experiments/benchmarks/round2_table.sh mobilenet_v2_fmnist w3a8 real
  # seed 0 of the W2A4 default is the linked earlier run (its dir holds an older configuration: seeds 1 and 2 go
  # beside it; the report groups runs by their labels, not by dir)
  for model in mobilenet_v2_fmnist resnet18_fmnist; do
    dir=$tv/${model}_w2a4_default_seeds12
    [ "$( (find "$dir" -name summary.json 2>/dev/null || true) | wc -l)" -ge 2 ] && continue
    lwcompress -m experiment=torchvision threads="${THREADS:-1}" model=$model +benchmark/cell=w2a4 \
      +benchmark/method=default seed=1,2 hydra.sweep.dir="$dir"
  done
fi
if [[ $parts == *columns* ]]; then
  one() { SEEDS=0 ROUND2_DIR=$tv EXPERIMENT=torchvision bash experiments/benchmarks/round2_table.sh "$@"; }
  one mobilenet_v2_fmnist w4a4_all "gptq zeroq real distilled"
  one resnet18_fmnist w4a4_all zeroq
  one resnet18_fmnist w3a8 "zeroq real distilled"
fi
