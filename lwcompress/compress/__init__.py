"""Compressors (quantizers and pruners) and the layer modules they produce, by name."""

from __future__ import annotations

from collections.abc import Callable

from lwcompress.compress.config import QuantConfig
from lwcompress.compress.modules import QuantLayer
from lwcompress.compress.rtn import LayerRecord, quantize_layers
from lwcompress.registry import Registry

__all__ = ["COMPRESSORS", "LayerRecord", "QuantConfig", "QuantLayer", "quantize_layers"]

COMPRESSORS: Registry[Callable[..., list[LayerRecord]]] = Registry("compressor")
COMPRESSORS.register("rtn")(quantize_layers)
# The layer-wise quantizer starts from the same round-to-nearest grids; api.compress then trains each layer.
COMPRESSORS.register("quant")(quantize_layers)
