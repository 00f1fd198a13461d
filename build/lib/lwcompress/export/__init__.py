"""Deployable output: a compressed network as an ONNX graph of integer weights and QDQ pairs, and the checks that
it computes what the PyTorch model computes."""

from lwcompress.export.check import INTEGER_OPS, Agreement, agreement, latency_ms, optimized_ops, session
from lwcompress.export.onnx_graph import OPSET, ExportError, to_onnx, weight_storage

__all__ = [
    "INTEGER_OPS",
    "OPSET",
    "Agreement",
    "ExportError",
    "agreement",
    "latency_ms",
    "optimized_ops",
    "session",
    "to_onnx",
    "weight_storage",
]
