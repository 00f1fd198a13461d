#!/usr/bin/env bash
# Round-2 tuning on the validation split (seed 0): the trained solver (AdaRound, the default) against the
# zero-training GPTQ solver at the cells where round-to-nearest breaks, both models; output appended to
# experiments/results/round2_tuning.log (each block starts with the cell's FP and RTN top-1).
#   bash experiments/probes/round2_tuning.sh
set -euo pipefail
out=${OUT:-experiments/results/round2_tuning.log}
probe() { python experiments/probes/solver_probe.py --threads 2 "$@" --variant "rounding=adaround" \
  --variant "rounding=gptq gptq_damp=0.001" | grep -E "top1|rtn" | tee -a "$out"; }
for model in resnet20 mobilenetv2_small; do
  probe --model $model --bits 3 8
  probe --model $model --bits 2 8
  probe --model $model --bits 3 3
  probe --model $model --bits 4 4 --all-layers
  probe --model $model --bits 2 4
done
