#!/usr/bin/env bash
# Second seed for the solver choice (validation split) at the cells where seed 0 disagreed most, plus resnet20
# W4A4 with the GPTQ settings of round2_tuning.sh; appended to experiments/results/round2_tuning.log.
#   bash experiments/probes/round2_tuning_seed1.sh
set -euo pipefail
out=${OUT:-experiments/results/round2_tuning.log}
probe() { python experiments/probes/solver_probe.py --threads 2 "$@" --variant "rounding=adaround" \
  --variant "rounding=gptq gptq_damp=0.001" | grep -E "top1|rtn" | tee -a "$out"; }
probe --model resnet20 --bits 4 4
probe --model resnet20 --bits 4 4 --seed 1
probe --model mobilenetv2_small --bits 3 3 --seed 1
probe --model mobilenetv2_small --bits 4 4 --seed 1
probe --model resnet20 --bits 2 4 --seed 1
