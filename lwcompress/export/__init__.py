"""Deployable output: a compressed network as an ONNX graph of integer weights and QDQ pairs, and the checks that
it computes what the PyTorch model computes."""

from lwcompress.export.check import (
    INTEGER_LAYER_OPS,
    INTEGER_OPS,
    Agreement,
    agreement,
    latency_ms,
    optimized_ops,
    session,
)
from lwcompress.export.onnx_graph import DEPTHWISE, OPSET, ExportError, kept_float, to_onnx, weight_storage

__all__ = [
    "DEPTHWISE",
    "INTEGER_LAYER_OPS",
    "INTEGER_OPS",
    "OPSET",
    "Agreement",
    "ExportError",
    "agreement",
    "kept_float",
    "latency_ms",
    "optimized_ops",
    "session",
    "to_onnx",
    "weight_storage",
]
