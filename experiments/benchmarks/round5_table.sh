#!/usr/bin/env bash
# The round-2 benchmark rerun on round 5's candidate (issue 23: half of GENIE's chunks per-pixel distilled images,
# generator=genie generator.pixel_fraction=0.5; the solver as rounds 3-4), same command and cells (experiment=round2),
# into logs/round5/multiruns; resumable pieces as round2_table.sh. As round4_table.sh: only the default and GPTQ run
# again, the closed forms, ZeroQ and the real-data ceiling are round 3's runs, linked in.
#   bash experiments/benchmarks/round5_table.sh [models] [cells] [methods]
#   PYTHONPATH=experiments/benchmarks python experiments/benchmarks/round3_checks.py logs/round5/multiruns \
#       --previous experiments/results/round4_checks.md > experiments/results/round5_checks.md
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUND2_DIR=${ROUND2_DIR:-logs/round5/multiruns} EXTRA="generator.pixel_fraction=0.5 ${EXTRA:-}" \
  bash experiments/benchmarks/round4_table.sh "$@"
