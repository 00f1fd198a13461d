#!/usr/bin/env bash
# Accuracy vs sparsity, 20-90 %, magnitude pruning vs layer-wise pruning (the default sequential runs on propagated
# data), uniform and global allocation, both small models, on the Fashion-MNIST test set. Every layer-wise run also
# evaluates its magnitude-pruned start (the same mask, no retraining), so one sweep gives both curves. One sweep
# per model at a time, one thread each. About 40 minutes on 2 CPU cores.
#   bash experiments/benchmarks/prune_sweep.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=logs/prune_sweep/$(date +%Y-%m-%d_%H-%M-%S)
run() { .venv/bin/lwcompress -m compressor=prune compressor.sparsity=0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9 \
  compressor.allocation=uniform,global threads=1 save_model=false real_diagnostics=false \
  trainer.enable_progress_bar=false hydra.sweep.dir="$out/$1" model="$1"; }
run resnet20 & run mobilenetv2_small; wait
.venv/bin/python experiments/benchmarks/prune_ratio.py "$out"
