"""Python API: `compress(model, QuantConfig(...))` from a notebook does what the CLI does.

Data flows one way: model -> graph analysis -> preconditioning -> data-free input ranges -> compressor.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lwcompress import io
from lwcompress.compress import COMPRESSORS, LayerRecord, QuantConfig, QuantLayer
from lwcompress.errors import UserError
from lwcompress.evaluate import size_bits
from lwcompress.generate import input_ranges
from lwcompress.graph import analyze
from lwcompress.precondition import precondition

__all__ = ["CompressedModel", "compress", "load_compressed"]


@dataclass
class CompressedModel:
    """A compressed network with what was done to each layer and what it cost."""

    model: nn.Module
    layers: list[LayerRecord]
    config: QuantConfig
    preconditioner: str
    wall_s: float
    meta: dict[str, Any] = field(default_factory=dict)

    def quant_layers(self) -> dict[str, QuantLayer]:
        return {n: m for n, m in self.model.named_modules() if isinstance(m, QuantLayer)}

    def size_bits(self) -> int:
        """Storage in bits: quantized weights at their width, everything else (biases, scales) at 32 bits."""
        bits = {f"{name}.layer.weight": q.wbits for name, q in self.quant_layers().items()}
        return size_bits(self.model, bits)

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Atomically write integer weight codes (int8/uint8), grids and the remaining float tensors."""
        state = self.model.state_dict()
        for name, q in self.quant_layers().items():
            del state[f"{name}.layer.weight"]
            state[f"{name}.weight_codes"] = q.codes()
        payload = {
            "state_dict": state,
            "meta": {
                **self.meta,
                **(meta or {}),
                "compressor": dataclasses.asdict(self.config),
                "preconditioner": self.preconditioner,
            },
        }
        return io.torch_save(path, payload)


def compress(
    model: nn.Module,
    config: QuantConfig,
    normalization: dict[str, list[float]],
    input_shape: tuple[int, ...],
    preconditioner: str = "bn_fold",
) -> CompressedModel:
    """Compress a trained model without data; `model` itself is left untouched.

    `normalization` ({"mean": [...], "std": [...]}) and `input_shape` (C, H, W) describe the model's input,
    which the data-free input model needs.
    """
    start = time.perf_counter()
    model = model.eval()
    example = torch.zeros(1, *input_shape)
    layers = analyze(model, example)
    ranges = input_ranges(model, layers, config.act_sigmas, normalization) if config.abits is not None else {}
    prepared = precondition(model, preconditioner).eval()
    spec = [(info.name, info.kind, info.is_first, info.is_last) for info in layers]
    records = COMPRESSORS.get(config.name)(prepared, spec, config, ranges)
    with torch.no_grad():
        out = prepared(example)
    if not torch.isfinite(out).all():
        raise FloatingPointError("the compressed model produces non-finite outputs")
    meta = {"normalization": normalization, "input_shape": list(input_shape)}
    return CompressedModel(prepared, records, config, preconditioner, time.perf_counter() - start, meta)


def load_compressed(path: str | Path, model: nn.Module) -> CompressedModel:
    """Rebuild a compressed model saved by `CompressedModel.save` on top of its (uncompressed) architecture."""
    from lwcompress.models import load_checkpoint

    state, meta = load_checkpoint(path)
    if "compressor" not in meta:
        raise UserError(f"{path} is not a compressed checkpoint (no compressor in its meta)")
    config = QuantConfig(**meta["compressor"])
    result = compress(model, config, meta["normalization"], tuple(meta["input_shape"]), meta["preconditioner"])
    codes = {k.removesuffix(".weight_codes"): state.pop(k) for k in list(state) if k.endswith(".weight_codes")}
    for name, q in result.quant_layers().items():
        state[f"{name}.layer.weight"] = q.layer.weight.detach().clone()
    try:
        result.model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"compressed checkpoint {path} does not fit the model: {str(e).splitlines()[0]}") from None
    for name, q in result.quant_layers().items():
        q.load_codes(codes[name])
    result.meta = meta
    return result
