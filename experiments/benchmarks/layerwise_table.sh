#!/usr/bin/env bash
# The layer-wise results table on the Fashion-MNIST test set, 3 seeds per cell: independent runs for both small
# models x generator x preconditioner at W4A4 and W3A8 (bn_fold only at W8A8 and W6A6); sequential runs (the
# default) with propagated and real inputs at every width. Two sweeps at a time,
# one thread each (two 2-thread jobs on 2 cores run ~6x slower). About 3 hours on 2 CPU cores. The RTN rows are
# experiments/results/rtn_table.md (experiments/benchmarks/rtn_table.sh).
#   bash experiments/benchmarks/layerwise_table.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=logs/layerwise_table/$(date +%Y-%m-%d_%H-%M-%S)
run() { name=$1; shift; .venv/bin/lwcompress -m experiment=layerwise_table threads=1 hydra.sweep.dir="$out/$name" "$@"; }
run w4a4 compressor.wbits=4 compressor.abits=4 & run w3a8 compressor.wbits=3 compressor.abits=8; wait
run w8a8 preconditioner=bn_fold compressor.wbits=8 compressor.abits=8 &
run w6a6 preconditioner=bn_fold compressor.wbits=6 compressor.abits=6; wait
sequential=(layerwise.mode=sequential generator=propagated,real preconditioner=bn_fold)
run seq_w4a4 "${sequential[@]}" compressor.wbits=4 compressor.abits=4 &
run seq_w3a8 "${sequential[@]}" compressor.wbits=3 compressor.abits=8; wait
run seq_w8w6 layerwise.mode=sequential generator=propagated,real preconditioner=bn_fold compressor.wbits=8,6 \
  'compressor.abits=${compressor.wbits}'
.venv/bin/lwcompress-report "$out" --by layerwise.mode,generator.name,preconditioner.name --wall
