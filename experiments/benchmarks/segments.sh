#!/usr/bin/env bash
# What a parallel sequential run costs: layerwise.segments=K cuts the layer order into K contiguous segments, each
# sequential inside itself with its first layer fed by the FP network, so K ranks can run them at once. K = 1 is
# the default sequential run; K = 64 (more than any model's layers) gives one segment per layer; the independent
# run is beside them (it also evaluates the round-to-nearest start). Both models at W4A4 and W3A8, seed 0, on the
# validation split (the test set is for reporting). One process, one thread per sweep, two sweeps at a time
# (about an hour on 2 cores).
#   bash experiments/benchmarks/segments.sh [OUT]   -> OUT/report.md (experiments/results/segments.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-logs/segments/$(date +%Y-%m-%d_%H-%M-%S)}
common=(model=resnet20,mobilenetv2_small eval_split=val threads=1 save_model=false real_diagnostics=false
        trainer.enable_progress_bar=false)
sweep() { name=$1; shift; .venv/bin/lwcompress -m "${common[@]}" "$@" hydra.sweep.dir="$out/$name"; }
sweep seq_w4a4 compressor.wbits=4 compressor.abits=4 layerwise.segments=1,2,4,8,64 &
{ sweep seq_w3a8 compressor.wbits=3 compressor.abits=8 layerwise.segments=1,2,4,8,64 eval_fp=false eval_rtn=false
  sweep ind_w4a4 layerwise.mode=independent compressor.wbits=4 compressor.abits=4 eval_fp=false
  sweep ind_w3a8 layerwise.mode=independent compressor.wbits=3 compressor.abits=8 eval_fp=false; } &
wait
.venv/bin/lwcompress-report "$out" --by layerwise.mode,layerwise.segments --wall --out "$out"
echo "runs in $out"
