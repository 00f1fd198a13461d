#!/usr/bin/env bash
# Round 11 (issue 23): does the new layer-run budget (600 steps of 16 inputs; 300 of 32 before) hold for pruning,
# which shares the layerwise settings? 70 % and 90 % sparsity, both small models, seed 0, validation split, one thread
# (logs/round11_prune/<budget>_<model>_<sparsity>; top-1 and wall printed at the end). Run at 72d4c00's parent, where
# 300 of 32 was the default; the overrides below name both budgets, so it reproduces on any later commit.
#   bash experiments/probes/round11_prune.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
declare -A BUDGET=([default]="layerwise.steps=300 layerwise.batch_size=32" [b16st600]="layerwise.steps=600 layerwise.batch_size=16")
for model in resnet20 mobilenetv2_small; do
  for sparsity in 0.7 0.9; do
    for budget in default b16st600; do
      dir=logs/round11_prune/${budget}_${model}_$sparsity
      [ -f "$dir/summary.json" ] && continue
      .venv/bin/lwcompress model=$model compressor=prune compressor.sparsity=$sparsity eval_split=val threads=1 \
        save_model=false real_diagnostics=false trainer.enable_progress_bar=false hydra.run.dir="$dir" ${BUDGET[$budget]}
    done
  done
done
for dir in logs/round11_prune/*/; do
  .venv/bin/python -c "import json, sys; s = json.load(open(sys.argv[1] + 'summary.json')); \
print(f\"{sys.argv[1]}: top-1 {s['top1']:.2f}, compression {s['compress_wall_s']:.0f} s\")" "$dir"
done
