#!/usr/bin/env bash
# The round-2 benchmark rerun on round 4's candidate default (issue 23: round 3's default on GENIE's images,
# generator=genie, with block units and learned input steps), same command and cells (experiment=round2), into
# logs/round4/multiruns; resumable pieces as round2_table.sh. Only what the generator changes runs again (the
# default, and GPTQ on the new images' second moments); the closed forms, ZeroQ and the real-data ceiling are round
# 3's runs, linked in (the same code for them, the same checkpoints). Ran at fbfb603, where genie was the default
# generator; EXTRA=generator=genie gives the same jobs at later commits.
#   bash experiments/benchmarks/round4_table.sh [models] [cells] [methods]
#   PYTHONPATH=experiments/benchmarks python experiments/benchmarks/round3_checks.py logs/round4/multiruns \
#       --previous experiments/results/round3_checks.md > experiments/results/round4_checks.md
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${ROUND2_DIR:-logs/round4/multiruns}
mkdir -p "$root"
for old in logs/round3/multiruns/*; do
  case $old in *_default|*_gptq) continue ;; esac
  [ -e "$root/$(basename "$old")" ] || ln -s "$(realpath "$old")" "$root/$(basename "$old")"
done
EXTRA="generator=genie ${EXTRA:-}" ROUND2_DIR=$root PATH=".venv/bin:$PATH" \
  bash experiments/benchmarks/round2_table.sh "${1:-mobilenetv2_small resnet20}" "${2:-w3a3 w4a4_all w3a4 w4a4 w2a4 w2a8 w3a8 w8a8}" \
  "${3:-default gptq}"
