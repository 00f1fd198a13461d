#!/usr/bin/env bash
# The closed-form data-free baselines on the Fashion-MNIST test set: round-to-nearest for both small models,
# every weight grid (min-max / MSE scale x asymmetric / symmetric), W8A8 ... W3A8, and with analytic bias
# correction at the low bit widths.  About 20 minutes on 2 CPU cores:
#   bash experiments/benchmarks/rtn_table.sh [extra overrides, e.g. threads=1]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=logs/rtn_table/$(date +%Y-%m-%d_%H-%M-%S)
run() { .venv/bin/lwcompress -m experiment=rtn_table "$@"; }
run hydra.sweep.dir="$out/matched" compressor.wbits=8,6,4 'compressor.abits=${compressor.wbits}' "$@"
run hydra.sweep.dir="$out/a8" compressor.wbits=4,3 compressor.abits=8 "$@"
run hydra.sweep.dir="$out/bc44" preconditioner=bias_correction compressor.wbits=4 compressor.abits=4 eval_fp=false "$@"
run hydra.sweep.dir="$out/bca8" preconditioner=bias_correction compressor.wbits=4,3 compressor.abits=8 eval_fp=false "$@"
.venv/bin/lwcompress-report "$out" --by preconditioner.name,compressor.scale,compressor.symmetric --wall
cp "$out/report.md" experiments/results/rtn_table.md
