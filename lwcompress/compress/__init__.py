"""Compressors (quantizers and pruners) and the layer modules they produce, by name."""

from __future__ import annotations

from collections.abc import Callable

from lwcompress.compress.config import CompressorConfig
from lwcompress.compress.integer_graph import IntegerGraph, TensorQuant, integer_graph
from lwcompress.compress.modules import CompressedLayer
from lwcompress.compress.wrap import LayerRecord, wrap_layers
from lwcompress.registry import Registry

__all__ = [
    "COMPRESSORS",
    "LayerRecord",
    "CompressorConfig",
    "CompressedLayer",
    "IntegerGraph",
    "TensorQuant",
    "integer_graph",
    "wrap_layers",
]

COMPRESSORS: Registry[Callable[..., list[LayerRecord]]] = Registry("compressor")
# Closed-form compressors wrap every layer and stop; the layer-wise ones start from the same wrapping (masks, grids)
# and api.compress then trains each layer.
for _name in ("rtn", "quant", "prune_magnitude", "prune"):
    COMPRESSORS.register(_name)(wrap_layers)
