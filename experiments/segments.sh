#!/usr/bin/env bash
# What a parallel sequential run costs: layerwise.segments=K cuts the layer order into K contiguous segments, each
# sequential inside itself with its first layer fed by the FP network, so K ranks can run them at once. K = 1 is
# the default sequential run; K = 64 (more than any model's layers) gives one segment per layer; the independent
# run is beside them. Both models at W4A4 and W3A8, seed 0, on the validation split (the test set is for
# reporting). One process, one thread (about 40 minutes on 2 cores).
#   bash experiments/segments.sh   -> experiments/results/segments.md
set -euo pipefail
cd "$(dirname "$0")/.."
out=logs/segments/$(date +%Y-%m-%d_%H-%M-%S)
common=(model=resnet20,mobilenetv2_small eval_split=val threads=1 save_model=false real_diagnostics=false
        trainer.enable_progress_bar=false)
for wa in 4,4 3,8; do
  bits=(compressor.wbits="${wa%,*}" compressor.abits="${wa#*,}")
  .venv/bin/lwcompress -m "${common[@]}" "${bits[@]}" layerwise.segments=1,2,4,8,64 \
    hydra.sweep.dir="$out/seq_w${wa%,*}a${wa#*,}"
  .venv/bin/lwcompress -m "${common[@]}" "${bits[@]}" layerwise.mode=independent eval_rtn=false \
    hydra.sweep.dir="$out/ind_w${wa%,*}a${wa#*,}"
done
.venv/bin/lwcompress-report "$out" --by layerwise.mode,layerwise.segments --wall --out "$out"
echo "runs in $out"
