#!/usr/bin/env bash
# Issue 26: the integer deployment form on every benchmark model. The data-free default at W8A8 and W4A4 (seed 0, one
# thread, the benchmark's experiment config) run with compressor.int32_bias=true compressor.integer_graph=true (and
# int8 weight codes, compressor.symmetric=true, at W8A8: onnxruntime's fast kernels take signed weights), each exported
# (int32 biases, as the run computed them) and checked on the full test set; the W8A8 run also as today's QDQ form
# (float biases, --min-agreement 0: those are not what the run computed) for its latency, and checked once more on 2
# threads (compressed_2t.onnx); resumable.
#   bash experiments/benchmarks/integer_table.sh     # -> experiments/results/integer_export.md (the table's rows)
set -euo pipefail
root=${INTEGER_DIR:-logs/integer}
for model in resnet20 mobilenetv2_small resnet18_fmnist mobilenet_v2_fmnist; do
  case $model in *_fmnist) experiment=torchvision ;; *) experiment=round2 ;; esac
  for bits in 8 4; do
    d=$root/${model}_w${bits}a${bits}
    grid=$([ "$bits" = 8 ] && echo "compressor.symmetric=true" || true)
    [ -f "$d/compressed.pt" ] || lwcompress experiment=$experiment model="$model" +benchmark/cell=w${bits}a${bits} \
      +benchmark/method=default compressor.int32_bias=true compressor.integer_graph=true $grid save_model=true \
      eval_rtn=false threads=1 seed=0 hydra.run.dir="$d"
    [ -f "$d/compressed.check.json" ] || lwcompress-export "$d" --check --threads 1
    if [ "$bits" = 8 ] && [ ! -f "$d/qdq.check.json" ]; then
      lwcompress-export "$d" --check --threads 1 --bias float --min-agreement 0 --out "$d/qdq.onnx"
    fi
    if [ "$bits" = 8 ] && [ ! -f "$d/compressed_2t.check.json" ]; then
      lwcompress-export "$d" --check --threads 2 --out "$d/compressed_2t.onnx"
    fi
  done
done
python experiments/benchmarks/export_table.py $root/*/compressed.check.json
