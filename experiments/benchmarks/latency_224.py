"""Issue 26, item 3: is the exported model faster than FP32 at ImageNet geometry? A torchvision model (random
weights: latency does not depend on them; no hub here) compressed by round-to-nearest at W8A8 (first and last layer
8 bit) with `compressor.int32_bias`, exported as FP32, as today's QDQ form (float biases, int4 codes below 5 bit) and,
for each weight grid of `--grids` (asymmetric: uint8 codes, the default; symmetric: int8 codes), as the integer form
(`--int8-weights --bias int32`) of a plain run and of a `compressor.integer_graph` run (every 8-bit tensor quantized
once, residual adds too), and for models with depthwise convolutions, those with the depthwise layers kept as float
kernels (`--keep-float depthwise`); onnxruntime CPU latency at each batch and thread count (median of `--repeats`
runs), how many layers (and residual adds) run as integer kernels, and where a batch-1 call spends its time by
operator (onnxruntime's profile). Appends markdown rows to `--log`.

    python experiments/benchmarks/latency_224.py --model resnet18 --threads 1 2 --batches 1 64
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torchvision

from lwcompress import io
from lwcompress.api import compress, export_onnx
from lwcompress.compress import CompressorConfig
from lwcompress.export import INTEGER_LAYER_OPS, latency_ms, optimized_ops, to_onnx
from lwcompress.graph import fold_bn

NORM = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def op_times(path: Path, shape: tuple[int, ...], runs: int = 5) -> dict[str, float]:
    """Milliseconds per call spent in each operator type (onnxruntime's profile, 1 thread, batch 1)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.enable_profiling = 1, True
    options.profile_file_prefix = str(path.with_suffix(""))
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, *shape), dtype=np.float32)
    for _ in range(runs + 2):
        sess.run(["logits"], {"input": x})
    trace = json.loads(Path(sess.end_profiling()).read_text())
    spent: Counter[str] = Counter()
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            spent[event["args"]["op_name"]] += event["dur"] / 1000 / (runs + 2)
    return dict(spent.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--grids", nargs="+", default=["asymmetric", "symmetric"], choices=["asymmetric", "symmetric"])
    parser.add_argument("--log", default="experiments/results/latency_224.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = getattr(torchvision.models, args.model)(num_classes=10).eval()
    shape = (3, args.size, args.size)
    depthwise = any(getattr(m, "groups", 1) > 1 for m in model.modules())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        plain = compress(model, CompressorConfig("rtn", wbits=8, abits=8, int32_bias=True), NORM, shape)
        paths = {
            "FP32": io.write_bytes(
                Path(tmp) / "fp32.onnx", to_onnx(fold_bn(model), torch.zeros(1, *shape), {}).SerializeToString()
            ),  # fmt: skip
            "QDQ (float biases)": export_onnx(plain, Path(tmp) / "qdq.onnx"),
        }
        for grid in args.grids:
            cfg = CompressorConfig("rtn", wbits=8, abits=8, int32_bias=True, symmetric=grid == "symmetric")
            runs = {
                "integer": compress(model, cfg, NORM, shape),
                "integer graph": compress(model, dataclasses.replace(cfg, integer_graph=True), NORM, shape),
            }
            for label, run in runs.items():
                for kept in [[], ["depthwise"]] if depthwise else [[]]:
                    name = f"{label}, {grid} weights" + (", depthwise float (--keep-float depthwise)" if kept else "")
                    paths[name] = export_onnx(run, Path(tmp) / f"{len(paths)}.onnx", int4=False, bias="int32",
                                              keep_float=kept)  # fmt: skip
        for name, path in paths.items():
            ops = optimized_ops(path, 1)
            fused = sum(n for op, n in ops.items() if op in INTEGER_LAYER_OPS)
            fused = f"{fused} + {ops['QLinearAdd']} adds" if ops.get("QLinearAdd") else fused
            times = [
                f"{latency_ms(path, (b, *shape), t, args.repeats):.1f}" for t in args.threads for b in args.batches
            ]
            rows.append(f"| {args.model} {args.size}px | {name} | {path.stat().st_size:,} | {fused} | "
                        f"{' | '.join(times)} |")  # fmt: skip
            spent = ", ".join(f"{op} {ms:.1f}" for op, ms in op_times(path, shape).items() if ms >= 0.1)
            rows[-1] += f"\n|  | (ms per batch-1 call by operator: {spent}) |"
            print(rows[-1], dict(sorted(ops.items())), flush=True)
    header = " | ".join(f"{t} thr b={b} ms" for t in args.threads for b in args.batches)
    text = (f"| model | export | bytes | integer kernels | {header} |\n|"
            + "---|" * (4 + len(args.threads) * len(args.batches)) + "\n" + "\n".join(rows) + "\n")  # fmt: skip
    with open(args.log, "a") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
