#!/usr/bin/env bash
# The RTN baseline table on the Fashion-MNIST test set (both small models, W8A8 ... W3A8).
#   bash experiments/rtn_table.sh   (about 10 minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=logs/rtn_table/$(date +%Y-%m-%d_%H-%M-%S)
.venv/bin/lwcompress -m experiment=rtn_table hydra.sweep.dir="$out/matched" \
  compressor.wbits=8,6,4,3 'compressor.abits=${compressor.wbits}'
.venv/bin/lwcompress -m experiment=rtn_table hydra.sweep.dir="$out/a8" compressor.wbits=4,3 compressor.abits=8
.venv/bin/python experiments/table.py "$out" > experiments/results/rtn_table.md
cat experiments/results/rtn_table.md
