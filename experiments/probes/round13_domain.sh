#!/usr/bin/env bash
# Round 13 (issue 23, round13_tuning.md §3): how closely mobilenetv2_small W3A3 runs follow the FP network on real
# and on distilled images. The benchmark runs keep no compressed.pt (save_model=false), so each run's command is
# rerun on a copy of its layer store with save_model=true (every layer loaded, none trained; the printed top-1 is
# the run's own, on the validation split), then domain_agreement.py reads the saved models.
#   bash experiments/probes/round13_domain.sh > experiments/results/round13_domain.log
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/round13_domain}
save() {  # save NAME JOB_DIR SEED: the run's command again on a copy of its store, saving the model
  rm -rf "$out/$1" && mkdir -p "$out/$1/0" && cp -r "$2/layers" "$out/$1/0/"
  mapfile -t task < <(.venv/bin/python -c "from omegaconf import OmegaConf
print('\n'.join(OmegaConf.load('$2/../multirun.yaml').hydra.overrides.task))")
  .venv/bin/lwcompress -m "hydra.sweep.dir=$out/$1" "${task[@]}" "seed=$3" eval_split=val save_model=true 2>&1 \
    | grep -E "^\w+ W3A3 \(" | sed "s/^/$1: /"
}
save default logs/round11_table/multiruns/mobilenetv2_small_w3a3_default/0 0
save real logs/round11_table/multiruns/mobilenetv2_small_w3a3_real/0 0
save clip_s0 logs/round13/clip_s0/mobilenetv2_small_w3a3_default/0 0
save clip_s1 logs/round13/clip_s1/mobilenetv2_small_w3a3_default/0 1
.venv/bin/python experiments/probes/domain_agreement.py default="$out/default/0" real="$out/real/0" \
  clip_s0="$out/clip_s0/0" clip_s1="$out/clip_s1/0" 2>&1 | grep -v -i warn
