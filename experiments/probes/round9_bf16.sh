#!/usr/bin/env bash
# Round 9 (issues 24 and 23): does bfloat16 change the result? The default against the same with the distillation
# (generator.precision=bf16) and the layer runs (trainer.precision=bf16-mixed) under bfloat16 autocast, at the
# torchvision checkpoints' W2A4 cells (where learning moves the most), validation split, seed 0, through the CLI as
# the benchmark runs it (logs/round9_bf16/<variant>; `python experiments/probes/round7_collect.py logs/round9_bf16`).
# The default's numbers are round 7's (round7_val.log). What bf16 saves at 224x224: profile_224.py.
#   bash experiments/probes/round9_bf16.sh [resnet18_fmnist|mobilenet_v2_fmnist]   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
SEEDS=0 ROUND2_DIR=logs/round9_bf16/bf16 EXTRA="eval_split=val generator.precision=bf16 trainer.precision=bf16-mixed" \
  EXPERIMENT=torchvision THREADS=1 PATH=".venv/bin:$PATH" bash experiments/benchmarks/round2_table.sh \
  "${1:-resnet18_fmnist}" w2a4 default
