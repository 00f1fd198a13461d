"""Wrap every layer under a compressor config: magnitude masks and round-to-nearest grids. No data, no training;
this is the closed-form result (rtn, prune_magnitude) and the start of every layer-wise run."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lwcompress.compress.config import CompressorConfig
from lwcompress.compress.modules import CompressedLayer
from lwcompress.compress.prune import magnitude_masks


@dataclass
class LayerRecord:
    """What was done to one layer (a row of layers.csv)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    params: int
    wbits: int | None
    abits: int | None
    input_lo: float | None
    input_hi: float | None
    sparsity: float = 0.0  # fraction of exact zeros in the weight


def wrap_layers(
    model: nn.Module,
    layers: list[tuple[str, str, bool, bool]],
    cfg: CompressorConfig,
    ranges: dict[str, tuple[float, float] | None],
) -> list[LayerRecord]:
    """Replace each named layer of `model` in place by a CompressedLayer under `cfg`'s bits and sparsity for it
    (`CompressorConfig.setting_for`: global values, first/last-layer keys, per-layer rules).

    `layers` holds (name, kind, is_first, is_last); a layer whose input range is unknown keeps a float input.
    """
    settings = {name: cfg.setting_for(name, first, last) for name, _, first, last in layers}
    masks = {}
    if cfg.prunes:
        weights = {name: model.get_submodule(name).weight for name, *_ in layers}
        targets = {name: s.sparsity for name, s in settings.items()}
        masks = magnitude_masks(weights, targets, cfg.allocation, cfg.pattern)
    records = []
    for name, kind, *_ in layers:
        layer = model.get_submodule(name)
        wbits, abits = settings[name].wbits, settings[name].abits
        rng = ranges.get(name)
        if rng is None:
            abits = None
        q = CompressedLayer(layer, wbits, cfg.symmetric, cfg.scale, abits, rng, masks.get(name), cfg.int32_bias)
        model.set_submodule(name, q)
        shape = tuple(layer.weight.shape)
        lo, hi = rng if rng else (None, None)
        records.append(LayerRecord(name, kind, shape, layer.weight.numel(), wbits, abits, lo, hi, q.sparsity))
    return records
