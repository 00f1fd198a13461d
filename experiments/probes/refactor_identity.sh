#!/usr/bin/env bash
# Issue 25's refactor check: the same commands before and after a change must give bit-identical compressed tensors
# and top-1. Runs resnet20 and mobilenetv2_small W4A4 (the default and rounding=gptq) and resnet20 generator=distilled
# on reduced budgets (every code path of the full runs, minutes instead of an hour), then prints one line per run:
# the sha256 of every tensor of compressed.pt in order, and the top-1.
#   bash experiments/probes/refactor_identity.sh OUT_DIR > OUT_DIR.txt      # at each commit, then: diff before.txt after.txt
set -euo pipefail
out=${1:?usage: refactor_identity.sh OUT_DIR}
small="layerwise.steps=40 generator.num_images=32 generator.chunk=32 generator.steps=20 threads=${THREADS:-1}"
run() {  # name, overrides...
  local name=$1; shift
  [ -f "$out/$name/summary.json" ] || lwcompress compressor.wbits=4 compressor.abits=4 $small "$@" \
    hydra.run.dir="$out/$name" cache=false save_model=true >"$out/$name.log" 2>&1
  python - "$out/$name" <<'PY'
import hashlib, json, sys
import torch
d = sys.argv[1]
state = torch.load(f"{d}/compressed.pt", weights_only=True, map_location="cpu")
def walk(x, key=""):
    if isinstance(x, torch.Tensor):
        yield key, hashlib.sha256(x.contiguous().view(-1).view(torch.uint8).numpy().tobytes()).hexdigest()[:12]
    elif isinstance(x, dict):
        for k in sorted(x, key=str):
            yield from walk(x[k], f"{key}.{k}")
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield from walk(v, f"{key}[{i}]")
digest = hashlib.sha256("".join(f"{k}={h};" for k, h in walk(state)).encode()).hexdigest()[:16]
s = json.load(open(f"{d}/summary.json"))
print(d.rsplit("/", 1)[-1], "tensors", digest, "top1", s["top1"])
PY
}
mkdir -p "$out"
run resnet20_default model=resnet20
run resnet20_gptq model=resnet20 compressor.rounding=gptq
run resnet20_distilled model=resnet20 generator=distilled
run mobilenetv2_small_default model=mobilenetv2_small
run mobilenetv2_small_gptq model=mobilenetv2_small compressor.rounding=gptq
