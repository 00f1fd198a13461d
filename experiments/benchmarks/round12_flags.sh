#!/usr/bin/env bash
# Round 12 (issue 23, round12_tuning.md): the two flags for 2-bit weights on a torchvision-scale network on the test
# split, at the cell they are for: torchvision mobilenet_v2 W2A4 with generator.bn_distance=per_bn (seeds 0-2) and
# with generator.bn_slack=0.1 (seeds 0-1), the benchmark's command otherwise (experiment=torchvision, one thread).
# Compare with round 11's default and real-data runs of the same cell (round11_checks.md).
#   bash experiments/benchmarks/round12_flags.sh [perbn|slack01]     (default: both)
#   lwcompress-report logs/round12_table/*/* --by labels.cell --columns labels.method
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=".venv/bin:$PATH"
for flag in ${1:-perbn slack01}; do
  case $flag in
    perbn) extra="generator.bn_distance=per_bn" seeds=0,1,2 ;;
    slack01) extra="generator.bn_slack=0.1" seeds=0,1 ;;
    *) echo "unknown flag $flag: perbn or slack01" >&2; exit 2 ;;
  esac
  ROUND2_DIR=logs/round12_table/$flag EXPERIMENT=torchvision SEEDS=$seeds EXTRA="$extra" \
    bash experiments/benchmarks/round2_table.sh mobilenet_v2_fmnist w2a4 default
done
