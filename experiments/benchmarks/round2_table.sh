#!/usr/bin/env bash
# The round-2 benchmark (experiment=round2), in resumable pieces: one Hydra sweep per model x cell x method into a
# fixed dir, skipped once it holds all its summary.json files; a killed sweep picks up where it stopped (layer by
# layer: nothing of a finished seed is thrown away).
#   bash experiments/benchmarks/round2_table.sh [models] [cells] [methods]     # defaults: everything below
#   lwcompress-report logs/round2/multiruns --by labels.cell --columns labels.method --wall \
#       --out experiments/results/round2
# Closed forms are deterministic (one seed); learned methods run seeds SEEDS (default 0,1,2: SEEDS=0 where one seed
# has to do, a later run with the default adds the others). One job at a time on THREADS threads
# (default 1, so that the machine's other core stays usable; the wall-time columns are 1-thread times).
set -euo pipefail
models=${1:-"resnet20 mobilenetv2_small"}
cells=${2:-"w8a8 w4a4 w3a8 w4a4_all w3a4 w3a3 w2a8 w2a4"}
methods=${3:-"rtn rtn_mse rtn_bc rtn_mse_bc default gptq distilled zeroq real"}
root=${ROUND2_DIR:-logs/round2/multiruns}
experiment=${EXPERIMENT:-round2}  # experiment=torchvision: experiments/benchmarks/torchvision_table.sh
threads=${THREADS:-1}
learned_seeds=${SEEDS:-0,1,2}
extra=${EXTRA:-}  # further Hydra overrides for every job (e.g. EXTRA=generator=genie: experiments/benchmarks/round4_table.sh)
for cell in $cells; do  # cell by cell, so that a partial run has whole rows
  for model in $models; do
    for method in $methods; do
      case $method in rtn*) seeds=0 ;; *) seeds=$learned_seeds ;; esac
      dir=$root/${model}_${cell}_${method}
      want=$(( $(tr -cd , <<<"$seeds" | wc -c) + 1 ))
      have=$( (find "$dir" -name summary.json 2>/dev/null || true) | wc -l)
      if [ "$have" -ge "$want" ]; then continue; fi
      # An unfinished sweep is rerun into the same dir: its finished jobs are redone from their stored layers and
      # cached images (an evaluation each), the interrupted one resumes at its next layer (a dir left by another
      # configuration is refused in one line: remove it).
      echo "== $model $cell $method (seeds $seeds)"
      lwcompress -m experiment="$experiment" threads="$threads" model="$model" +benchmark/cell="$cell" +benchmark/method="$method" \
        seed="$seeds" hydra.sweep.dir="$dir" $extra
    done
  done
done
