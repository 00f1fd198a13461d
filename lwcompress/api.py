"""Python API: `compress(model, CompressorConfig(...))` from a notebook does what the CLI does.

Data flows one way: model -> graph analysis -> preconditioning -> data-free input ranges -> compressor.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from lwcompress import io
from lwcompress.compress import COMPRESSORS, CompressedLayer, CompressorConfig, LayerRecord
from lwcompress.errors import UserError
from lwcompress.evaluate import size_bits
from lwcompress.generate import (
    GenerationContext,
    GeneratorConfig,
    build_inputs,
    calibrated_ranges,
    capture_inputs,
    generator_domain,
    input_ranges,
    mse_ranges,
    source_images,
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
from lwcompress.models.checkpoint import weights_digest
from lwcompress.precondition import PreconditionerConfig, correct_biases, equalized, expected_inputs, fold

__all__ = ["CompressedModel", "compress", "load_compressed"]


@dataclass
class CompressedModel:
    """A compressed network with what was done to each layer and what it cost."""

    model: nn.Module
    layers: list[LayerRecord]
    config: CompressorConfig
    preconditioner: PreconditionerConfig
    wall_s: float
    meta: dict[str, Any] = field(default_factory=dict)
    results: list[LayerResult] = field(default_factory=list)  # per-layer metrics of learned compressors

    def compressed_layers(self) -> dict[str, CompressedLayer]:
        return {n: m for n, m in self.model.named_modules() if isinstance(m, CompressedLayer)}

    def size_bits(self) -> int:
        """Storage in bits: compressed weights at their width (float: 32), pruned ones not at all but their mask at
        1 bit per weight (a bitmap), everything else (biases, scales) at 32 bits."""
        bits: dict[str, int] = {}
        stored = 0
        for name, q in self.compressed_layers().items():
            bits[f"{name}.layer.weight"] = 0
            kept = q.layer.weight.numel() if q.mask is None else int(q.mask.sum())
            stored += kept * (q.wbits or 32)
            if q.mask is not None:
                bits[f"{name}.mask"] = 1
        return size_bits(self.model, bits) + stored

    def sparsity(self) -> float:
        """Fraction of all compressed layers' weights pruned by their masks."""
        layers = self.compressed_layers().values()
        pruned = sum(q.sparsity * q.layer.weight.numel() for q in layers)
        return pruned / max(1, sum(q.layer.weight.numel() for q in layers))

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Atomically write integer weight codes (int8/uint8), grids, masks and the remaining float tensors; pruned
        weights are exact zeros (float weights are stored as they are)."""
        state = self.model.state_dict()
        for name, q in self.compressed_layers().items():
            if q.wbits is None:
                continue
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
    config: CompressorConfig,
    normalization: dict[str, list[float]],
    input_shape: tuple[int, ...],
    preconditioner: PreconditionerConfig | None = None,
    generator: GeneratorConfig | None = None,
    layerwise: LayerwiseConfig | None = None,
    real_images: torch.Tensor | None = None,
    make_trainer: Callable[[], pl.Trainer] | None = None,
    store_dir: str | Path | None = None,
    cache: dict | None = None,
) -> CompressedModel:
    """Compress a trained model; `model` itself is left untouched.

    `normalization` ({"mean": [...], "std": [...]}) and `input_shape` (C, H, W) describe the model's input,
    which the data-free input model needs. Learned compressors (`config.learned`) then train every layer on
    inputs from `generator` under `layerwise`; `real_images` (normalized, never needed by the data-free
    generators) feed generator=real and the per-layer diagnostics on real activations. With `store_dir`, each
    finished layer is saved there and a rerun resumes from them. `cache` keeps generated images across calls
    (pass the same dict to reuse distilled images); `meta["generate_wall_s"]` is the time spent generating.
    """
    start = time.perf_counter()
    pre = preconditioner or PreconditionerConfig()
    generator = generator or GeneratorConfig()
    layerwise = layerwise or LayerwiseConfig()
    example = torch.zeros(1, *input_shape)
    ctx = GenerationContext(tuple(input_shape), layerwise.spatial_size, real_images, {} if cache is None else cache)
    generate_s = 0.0
    # Everything that reads BN statistics (ranges, generators, bias correction) reads the equalized model.
    model = equalized(model.eval(), pre, example)
    layers = analyze(model, example)
    ranges: dict[str, tuple[float, float] | None] = {}
    if config.abits is not None:
        bits = {i.name: config.bits_for(i.is_first, i.is_last)[1] or 8 for i in layers}
        ranges = input_ranges(model, layers, {n: config.sigmas_for(b) for n, b in bits.items()}, normalization)
        if config.act_range == "mse":
            ranges = mse_ranges(model, layers, ranges, bits)
        elif config.act_range == "calibrated":
            clock = time.perf_counter()
            images, batch_stat_bn = source_images(model, generator, ctx)
            generate_s += time.perf_counter() - clock
            ranges = calibrated_ranges(model, layers, ranges, images, batch_stat_bn, generator.chunk)
    prepared = fold(model, pre).eval()
    references = {i.name: copy.deepcopy(prepared.get_submodule(i.name)).requires_grad_(False) for i in layers}
    spec = [(info.name, info.kind, info.is_first, info.is_last) for info in layers]
    records = COMPRESSORS.get(config.name)(prepared, spec, config, ranges)
    if pre.bias_correction:
        correct_biases(prepared, expected_inputs(model, layers, seed=generator.seed))
    results: list[LayerResult] = []
    if config.learned:
        clock = time.perf_counter()
        inputs = build_inputs(model, layers, generator, ctx) if layerwise.mode == "independent" else {}
        if layerwise.mode == "sequential":
            domain, images = generator_domain(model, generator, ctx)
        generate_s += time.perf_counter() - clock
        real = _diagnostic_inputs(model, layers, real_images, generator)
        train_all = layerwise.train_input_layers or generator.name == "real"
        tasks = [
            LayerTask(info.name, index, prepared.get_submodule(info.name), references[info.name], inputs.get(info.name),
                      info.activation, real.get(info.name), train=train_all or not _fed_by_image(info))
            for index, info in enumerate(layers)
        ]  # fmt: skip
        fingerprint = {"config": dataclasses.asdict(config), "generator": dataclasses.asdict(generator),
                       "layerwise": dataclasses.asdict(layerwise), "preconditioner": dataclasses.asdict(pre),
                       "weights": weights_digest(model)}  # fmt: skip
        store = LayerStore(store_dir, fingerprint) if store_dir is not None else None
        learn = (config.rounding, config.learn_weight_scale, config.learn_input_scale)
        if layerwise.mode == "sequential":
            # Generated images are no stand-in for pixels: image-fed layers see them unquantized.
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
    meta = {"normalization": normalization, "input_shape": list(input_shape), "generate_wall_s": generate_s}
    return CompressedModel(prepared, records, config, pre, time.perf_counter() - start, meta, results)


def _grid(q: CompressedLayer) -> dict[str, float | None]:
    lo, hi = q.input_range or (None, None)
    return {"input_lo": lo, "input_hi": hi}


def _fed_by_image(info: LayerInfo) -> bool:
    return any(s.kind == "input" for s in info.sources)


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
    config = CompressorConfig(**meta["compressor"])
    pre = PreconditionerConfig(**meta["preconditioner"])
    # The closed-form compressor rebuilds the structure (masks, grids, wrappers); the stored state overwrites it.
    result = compress(
        model, dataclasses.replace(config, name=config.closed_form), meta["normalization"],
        tuple(meta["input_shape"]), pre,
    )  # fmt: skip
    result.config = config
    codes = {k.removesuffix(".weight_codes"): state.pop(k) for k in list(state) if k.endswith(".weight_codes")}
    for name, q in result.compressed_layers().items():
        state.setdefault(f"{name}.layer.weight", q.layer.weight.detach().clone())
    try:
        result.model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"compressed checkpoint {path} does not fit the model: {str(e).splitlines()[0]}") from None
    for name, q in result.compressed_layers().items():
        if name in codes:
            q.load_codes(codes[name])
    result.meta = meta
    return result
