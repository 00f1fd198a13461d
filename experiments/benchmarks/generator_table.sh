#!/usr/bin/env bash
# Layer-input generators side by side at W4A4 (compressor=quant) and at 70 % sparsity (compressor=prune), both
# small models, Fashion-MNIST test set, with wall times: bn_gaussian, propagated, distilled (ZeroQ-style images),
# hybrid (distilled + bn_gaussian or + propagated, half and half) and real (the non-data-free ceiling), as
# independent layer runs (the paper's; every generator) and sequential runs (those with a network forward:
# propagated, distilled, real). Plus the ZeroQ baseline itself: round to nearest with activation ranges calibrated
# on the distilled images. One model per process, one thread each. About 1 hour on 2 CPU cores.
#   bash experiments/benchmarks/generator_table.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=logs/generator_table/$(date +%Y-%m-%d_%H-%M-%S)
settings=("compressor=quant compressor.wbits=4 compressor.abits=4" "compressor=prune compressor.sparsity=0.7")
model_runs() {
  m=$1
  run() { name=$1; shift; .venv/bin/lwcompress -m model="$m" threads=1 save_model=false real_diagnostics=false \
    trainer.enable_progress_bar=false hydra.sweep.dir="$out/$m/$name" "$@"; }
  for i in 0 1; do
    # shellcheck disable=SC2086
    set -- ${settings[$i]}
    run "ind$i" "$@" layerwise.mode=independent generator=bn_gaussian,propagated,distilled,hybrid,real
    run "hyb$i" "$@" layerwise.mode=independent generator=hybrid generator.partner=propagated
    run "seq$i" "$@" layerwise.mode=sequential generator=propagated,distilled,real
  done
  run zeroq compressor=rtn compressor.wbits=4 compressor.abits=4 generator=distilled compressor.act_range=calibrated
}
model_runs resnet20 & model_runs mobilenetv2_small; wait
.venv/bin/lwcompress-report "$out" --by layerwise.mode,generator.name,generator.partner,compressor.name --wall
