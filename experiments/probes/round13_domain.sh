#!/usr/bin/env bash
# Round 13 (issue 23, round13_tuning.md §3): how closely mobilenetv2_small W3A3 runs follow the FP network on real
# and on distilled images: each run saved as a model (save_run.sh), then domain_agreement.py reads them.
#   bash experiments/probes/round13_domain.sh > experiments/results/round13_domain.log
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/round13_domain}
source experiments/probes/save_run.sh
save default logs/round11_table/multiruns/mobilenetv2_small_w3a3_default/0 0
save real logs/round11_table/multiruns/mobilenetv2_small_w3a3_real/0 0
save clip_s0 logs/round13/clip_s0/mobilenetv2_small_w3a3_default/0 0
save clip_s1 logs/round13/clip_s1/mobilenetv2_small_w3a3_default/0 1
.venv/bin/python experiments/probes/domain_agreement.py default="$out/default/0" real="$out/real/0" \
  clip_s0="$out/clip_s0/0" clip_s1="$out/clip_s1/0" 2>&1 | grep -v -i warn
