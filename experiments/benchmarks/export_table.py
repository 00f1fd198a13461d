"""Collect `lwcompress-export --check` reports (FILE.check.json) into one markdown table (export_table.sh)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lwcompress.report import table

HEADER = ["model", "bits", "form", "agreement %", "max / mean |logit diff|", "top-1 ONNX / PyTorch",
          "FP32 params B", "packed B", "ONNX FP32 / compressed B", "b=1 ms FP32 / compressed",
          "b=256 ms FP32 / compressed", "integer layers"]  # fmt: skip


def row(path: Path) -> list:
    r = json.loads(path.read_text())
    run = json.loads((path.parent / "summary.json").read_text())
    a, by, lat = r["agreement"], r["bytes"], r["latency_ms"]
    ms1, ms256 = (f"{lat['fp32'][b]:.{d}f} / {lat['compressed'][b]:.{d}f}" for b, d in (("1", 2), ("256", 0)))
    form = r["biases"] + (", integer graph" if r.get("integer_graph") else "")
    if r.get("integer_graph") is not None:  # reports before it did not say how the weights were stored
        form += ", unsigned codes" if r["unsigned_weight_layers"] else ", signed codes"
    adds = f" + {r['integer_adds']} adds" if r.get("integer_adds") else ""
    kernels = f"{r['integer_layers']} / {r['layers']}{adds}"
    return [run["model"], run["setting"], form, f"{a['agree']:.2f}", f"{a['max_abs']:.3g} / {a['mean_abs']:.2g}",
            f"{a['onnx_top1']:.2f} / {a['torch_top1']:.2f}", by["fp32_params"], by["packed"],
            f"{by['fp32_onnx']} / {by['compressed_onnx']}", ms1, ms256,
            kernels]  # fmt: skip


def main(paths: list[str]) -> None:
    rows = [row(Path(p)) for p in sorted(paths)]
    print(table(HEADER, rows))


if __name__ == "__main__":
    main(sys.argv[1:])
