#!/usr/bin/env bash
# Round 2 probe on the validation split (seed 0): the layer-wise default without a guard, with the layer guard,
# and the zero-training GPTQ solver, at cells where round-to-nearest holds and where it breaks.
# Each run's summary.json has rtn_top1 (the closed-form start), top1, compress_wall_s and the guard's errors.
#   bash experiments/probes/guard_probe.sh; lwcompress-report logs/guard_probe/multiruns/* --by model.name,compressor.wbits,compressor.abits,compressor.rounding,layerwise.guard --wall
set -euo pipefail
common="eval_split=val threads=2 save_model=false real_diagnostics=false trainer.enable_progress_bar=false task_name=guard_probe"
for model in resnet20 mobilenetv2_small; do
  for bits in "4 4" "3 8" "2 8"; do
    set -- $bits
    lwcompress -m $common model=$model compressor.wbits=$1 compressor.abits=$2 \
      layerwise.guard=none,layer compressor.rounding=adaround,gptq
  done
done
