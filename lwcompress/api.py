"""Python API: `compress(model, QuantConfig(...))` from a notebook does what the CLI does.

Data flows one way: model -> graph analysis -> preconditioning -> data-free input ranges -> compressor.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from lwcompress import io
from lwcompress.compress import COMPRESSORS, LayerRecord, QuantConfig, QuantLayer
from lwcompress.errors import UserError
from lwcompress.evaluate import size_bits
from lwcompress.generate import (
    GenerationContext,
    GeneratorConfig,
    build_inputs,
    capture_inputs,
    generator_domain,
    input_ranges,
    mse_ranges,
)
from lwcompress.graph import LayerInfo, analyze
from lwcompress.layerwise import (
    LayerResult,
    LayerStore,
    LayerTask,
    LayerwiseConfig,
    layer_trainer,
    reconstruct,
    reconstruct_sequential,
)
from lwcompress.precondition import PreconditionerConfig, correct_biases, equalized, expected_inputs, fold

__all__ = ["CompressedModel", "compress", "load_compressed"]


@dataclass
class CompressedModel:
    """A compressed network with what was done to each layer and what it cost."""

    model: nn.Module
    layers: list[LayerRecord]
    config: QuantConfig
    preconditioner: PreconditionerConfig
    wall_s: float
    meta: dict[str, Any] = field(default_factory=dict)
    results: list[LayerResult] = field(default_factory=list)  # per-layer metrics of learned compressors

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
                "preconditioner": dataclasses.asdict(self.preconditioner),
            },
        }
        return io.torch_save(path, payload)


def compress(
    model: nn.Module,
    config: QuantConfig,
    normalization: dict[str, list[float]],
    input_shape: tuple[int, ...],
    preconditioner: PreconditionerConfig | None = None,
    generator: GeneratorConfig | None = None,
    layerwise: LayerwiseConfig | None = None,
    real_images: torch.Tensor | None = None,
    make_trainer: Callable[[], pl.Trainer] | None = None,
    store_dir: str | Path | None = None,
) -> CompressedModel:
    """Compress a trained model; `model` itself is left untouched.

    `normalization` ({"mean": [...], "std": [...]}) and `input_shape` (C, H, W) describe the model's input,
    which the data-free input model needs. Learned compressors (`config.learned`) then train every layer on
    inputs from `generator` under `layerwise`; `real_images` (normalized, never needed by the data-free
    generators) feed generator=real and the per-layer diagnostics on real activations. With `store_dir`, each
    finished layer is saved there and a rerun resumes from them.
    """
    start = time.perf_counter()
    pre = preconditioner or PreconditionerConfig()
    example = torch.zeros(1, *input_shape)
    # Everything that reads BN statistics (ranges, generators, bias correction) reads the equalized model.
    model = equalized(model.eval(), pre, example)
    layers = analyze(model, example)
    ranges: dict[str, tuple[float, float] | None] = {}
    if config.abits is not None:
        bits = {i.name: config.bits_for(i.is_first, i.is_last)[1] or 8 for i in layers}
        ranges = input_ranges(model, layers, {n: config.sigmas_for(b) for n, b in bits.items()}, normalization)
        if config.act_range == "mse":
            ranges = mse_ranges(model, layers, ranges, bits)
    prepared = fold(model, pre).eval()
    references = {i.name: copy.deepcopy(prepared.get_submodule(i.name)).requires_grad_(False) for i in layers}
    spec = [(info.name, info.kind, info.is_first, info.is_last) for info in layers]
    records = COMPRESSORS.get(config.name)(prepared, spec, config, ranges)
    if pre.bias_correction:
        correct_biases(prepared, expected_inputs(model, layers, seed=generator.seed if generator else 0))
    results: list[LayerResult] = []
    if config.learned:
        generator = generator or GeneratorConfig()
        layerwise = layerwise or LayerwiseConfig()
        ctx = GenerationContext(tuple(input_shape), layerwise.spatial_size, real_images)
        inputs = build_inputs(model, layers, generator, ctx) if layerwise.mode == "independent" else {}
        real = _diagnostic_inputs(model, layers, real_images, generator)
        train_all = layerwise.train_input_layers or generator.name == "real"
        tasks = [
            LayerTask(info.name, index, prepared.get_submodule(info.name), references[info.name], inputs.get(info.name),
                      info.activation, real.get(info.name), train=train_all or not _fed_by_image(info))
            for index, info in enumerate(layers)
        ]  # fmt: skip
        fingerprint = {"config": dataclasses.asdict(config), "generator": dataclasses.asdict(generator),
                       "layerwise": dataclasses.asdict(layerwise), "preconditioner": dataclasses.asdict(pre),
                       "weights": _weights_digest(model)}  # fmt: skip
        store = LayerStore(store_dir, fingerprint) if store_dir is not None else None
        learn = (config.rounding, config.learn_weight_scale, config.learn_input_scale)
        if layerwise.mode == "sequential":
            domain, images = generator_domain(model, generator, ctx)
            # Noise images are no stand-in for pixels: image-fed layers see them unquantized in that domain.
            float_inputs = {i.name for i in layers if _fed_by_image(i)} if generator.name != "real" else set()
            results = reconstruct_sequential(tasks, layerwise, make_trainer or layer_trainer, fold(domain, pre).eval(),
                                             images, float_inputs, *learn, store, layerwise.spatial_size,
                                             generator.chunk)  # fmt: skip
        else:
            results = reconstruct(tasks, layerwise, make_trainer or layer_trainer, *learn, store)
        records = [dataclasses.replace(r, **_grid(prepared.get_submodule(r.name))) for r in records]
    with torch.no_grad():
        out = prepared(example)
    if not torch.isfinite(out).all():
        raise FloatingPointError("the compressed model produces non-finite outputs")
    meta = {"normalization": normalization, "input_shape": list(input_shape)}
    return CompressedModel(prepared, records, config, pre, time.perf_counter() - start, meta, results)


def _grid(q: QuantLayer) -> dict[str, float | None]:
    lo, hi = q.input_range or (None, None)
    return {"input_lo": lo, "input_hi": hi}


def _fed_by_image(info: LayerInfo) -> bool:
    return any(s.kind == "input" for s in info.sources)


def _weights_digest(model: nn.Module) -> str:
    """A cheap fingerprint of the FP weights, so stored layer results are never reused for other weights."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _diagnostic_inputs(
    model: nn.Module, layers: list[LayerInfo], real_images: torch.Tensor | None, generator: GeneratorConfig
) -> dict[str, torch.Tensor]:
    """Real layer inputs held out from everything the layer runs train on (diagnostics only)."""
    if real_images is None:
        return {}
    held = (
        real_images[generator.num_images : generator.num_images + 64] if generator.name == "real" else real_images[:64]
    )
    if len(held) == 0:
        return {}
    return capture_inputs(model, [i.name for i in layers], held, batch_stat_bn=False)


def load_compressed(path: str | Path, model: nn.Module) -> CompressedModel:
    """Rebuild a compressed model saved by `CompressedModel.save` on top of its (uncompressed) architecture."""
    from lwcompress.models import load_checkpoint

    state, meta = load_checkpoint(path)
    if "compressor" not in meta:
        raise UserError(f"{path} is not a compressed checkpoint (no compressor in its meta)")
    config = QuantConfig(**meta["compressor"])
    pre = PreconditionerConfig(**meta["preconditioner"])
    # Round-to-nearest rebuilds the structure (grids, wrappers); the stored state then overwrites it.
    result = compress(
        model, dataclasses.replace(config, name="rtn"), meta["normalization"], tuple(meta["input_shape"]), pre
    )
    result.config = config
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
