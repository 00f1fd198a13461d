"""Issue 26, item 3: is the exported model faster than FP32 at ImageNet geometry? A torchvision model (random
weights: latency does not depend on them; no hub here) compressed by round-to-nearest at W8A8 (first and last layer
8 bit) with `compressor.int32_bias`, exported as FP32, as today's QDQ form (float biases, int4 codes below 5 bit) and
as the integer form (`--int8-weights --bias int32`); onnxruntime CPU latency at each batch and thread count (median
of `--repeats` runs) and which operators onnxruntime runs. Appends markdown rows to `--log`.

    python experiments/benchmarks/latency_224.py --model resnet18 --threads 1 2 --batches 1 64
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torchvision

from lwcompress import io
from lwcompress.api import compress, export_onnx
from lwcompress.compress import CompressorConfig
from lwcompress.export import INTEGER_OPS, latency_ms, optimized_ops, to_onnx
from lwcompress.graph import fold_bn

NORM = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--log", default="experiments/results/latency_224.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = getattr(torchvision.models, args.model)(num_classes=10).eval()
    shape = (3, args.size, args.size)
    cfg = CompressorConfig("rtn", wbits=8, abits=8, int32_bias=True)
    result = compress(model, cfg, NORM, shape)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            "FP32": io.write_bytes(
                Path(tmp) / "fp32.onnx", to_onnx(fold_bn(model), torch.zeros(1, *shape), {}).SerializeToString()
            ),  # fmt: skip
            "QDQ (float biases)": export_onnx(result, Path(tmp) / "qdq.onnx"),
            "integer (int8 codes, int32 biases)": export_onnx(result, Path(tmp) / "int.onnx", int4=False, bias="int32"),
        }
        for name, path in paths.items():
            ops = optimized_ops(path, 1)
            fused = sum(n for op, n in ops.items() if op in INTEGER_OPS)
            times = [
                f"{latency_ms(path, (b, *shape), t, args.repeats):.1f}" for t in args.threads for b in args.batches
            ]
            rows.append(f"| {args.model} {args.size}px | {name} | {path.stat().st_size:,} | {fused} | "
                        f"{' | '.join(times)} |")  # fmt: skip
            print(rows[-1], dict(sorted(ops.items())), flush=True)
    header = " | ".join(f"{t} thr b={b} ms" for t in args.threads for b in args.batches)
    text = (f"| model | export | bytes | integer kernels | {header} |\n|"
            + "---|" * (4 + len(args.threads) * len(args.batches)) + "\n" + "\n".join(rows) + "\n")  # fmt: skip
    with open(args.log, "a") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
