#!/usr/bin/env bash
# The ONNX export table (docs/deployment.md): the data-free default at W8A8 and W4A4 on both models (one thread, seed 0), each
# exported and checked on the full test set (float biases), W8A8 also with int32 biases (integer kernels).
#   bash experiments/benchmarks/export_table.sh      # -> experiments/results/export.md
set -euo pipefail
root=logs/export
for model in resnet20 mobilenetv2_small; do
  for bits in 8 4; do
    d=$root/${model}_w${bits}a${bits}
    [ -f "$d/compressed.pt" ] || lwcompress model="$model" compressor.wbits=$bits compressor.abits=$bits threads=1 \
      eval_fp=false eval_rtn=false real_diagnostics=false trainer.enable_progress_bar=false hydra.run.dir="$d"
    lwcompress-export "$d" --check --threads 1
    if [ "$bits" = 8 ]; then
      lwcompress-export "$d" --check --threads 1 --bias int32 --min-agreement 0 --out "$d/compressed_int32.onnx"
    fi
  done
done
python experiments/benchmarks/export_table.py $root/*/compressed*.check.json  # the table of experiments/results/export.md
