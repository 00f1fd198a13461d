#!/usr/bin/env bash
# Issue 24: the two torchvision benchmark cells still empty after round 6 (one seed, as their columns): resnet18 W3A8
# GPTQ (its dir under logs/torchvision held an unfinished run of an earlier configuration, so the round-6 table's
# link to it is replaced by a fresh run) and mobilenet_v2 W3A8 distilled; then the report as round6_table.sh makes it.
#   bash experiments/benchmarks/torchvision_fill.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=".venv/bin:$PATH"
tv=logs/torchvision_round6/multiruns
[ -L "$tv/resnet18_fmnist_w3a8_gptq" ] && rm "$tv/resnet18_fmnist_w3a8_gptq"
SEEDS=0 ROUND2_DIR=$tv EXPERIMENT=torchvision THREADS=1 bash experiments/benchmarks/round2_table.sh resnet18_fmnist w3a8 gptq
SEEDS=0 ROUND2_DIR=$tv EXPERIMENT=torchvision THREADS=1 bash experiments/benchmarks/round2_table.sh mobilenet_v2_fmnist w3a8 distilled
lwcompress-report $tv --by labels.cell --columns labels.method --wall --out experiments/results/torchvision
