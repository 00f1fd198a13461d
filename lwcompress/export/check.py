"""What an exported ONNX model is worth: agreement with the PyTorch model it came from, and its onnxruntime speed."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn
from torch.utils.data import DataLoader

# Operators through which onnxruntime computes in integers (what a QDQ graph is fused into when it can be): the
# layers' kernels, and the others (residual adds, pooling).
INTEGER_LAYER_OPS = frozenset(
    {
        "QLinearConv",
        "QLinearMatMul",
        "QGemm",
        "ConvInteger",
        "MatMulInteger",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
    }
)
INTEGER_OPS = INTEGER_LAYER_OPS | {"QLinearAdd", "QLinearGlobalAveragePool"}


def session(path: str | Path, threads: int, optimized: str | Path | None = None) -> ort.InferenceSession:
    """A CPU session with all graph optimizations, `threads` intra-op threads and no inter-op parallelism."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: saving the optimized graph warns that it is machine-specific
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class Agreement:
    """PyTorch model vs its ONNX export on the same images."""

    images: int
    agree: float  # % of images with the same top-1 class
    torch_top1: float
    onnx_top1: float
    max_abs: float  # largest absolute logit difference
    mean_abs: float  # mean absolute logit difference


@torch.no_grad()
def agreement(model: nn.Module, path: str | Path, loader: DataLoader, threads: int) -> Agreement:
    """Run every image of `loader` through both; count top-1 agreement and the logit differences."""
    sess = session(path, threads)
    n = same = right_torch = right_onnx = 0
    max_abs, sum_abs = 0.0, 0.0
    for x, y in loader:
        ref = model.eval()(x)
        out = torch.from_numpy(sess.run(["logits"], {"input": x.numpy()})[0])
        if not torch.isfinite(out).all():
            raise FloatingPointError(f"onnxruntime produced non-finite logits for {path}")
        diff = (out - ref).abs()
        n += len(y)
        same += int((out.argmax(1) == ref.argmax(1)).sum())
        right_torch += int((ref.argmax(1) == y).sum())
        right_onnx += int((out.argmax(1) == y).sum())
        max_abs, sum_abs = max(max_abs, float(diff.max())), sum_abs + float(diff.mean(1).sum())
    return Agreement(n, 100 * same / n, 100 * right_torch / n, 100 * right_onnx / n, max_abs, sum_abs / n)


def latency_ms(path: str | Path, shape: tuple[int, ...], threads: int, repeats: int) -> float:
    """Median wall time of one onnxruntime call on a batch of `shape`, after warm-up runs."""
    sess = session(path, threads)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    for _ in range(max(3, repeats // 10)):
        sess.run(["logits"], {"input": x})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(["logits"], {"input": x})
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def optimized_ops(path: str | Path, threads: int) -> Counter[str]:
    """Operator counts of the graph onnxruntime actually runs (after its QDQ fusions and constant folding)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "optimized.onnx"
        session(path, threads, optimized=out)
        return Counter(node.op_type for node in onnx.load(str(out)).graph.node)
