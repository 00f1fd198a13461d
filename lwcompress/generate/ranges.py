"""Data-free ranges of every layer's input, from BatchNorm statistics (the paper's input model).

A BatchNorm output is modelled as N(beta_c, gamma_c^2) per channel, so it lies in beta_c +- k|gamma_c| with
k = `sigmas`; the model input lies in the image's normalized pixel range. Every op on the elementwise path
(ReLU, ReLU6, adds, pooling, flatten, concat) is monotone, so running the layer's path on the per-channel
lower and upper bounds gives bounds of the layer input. Adds sum the bounds of their terms: conservative,
never clipping what the model calls typical.
"""

from __future__ import annotations

import torch
from torch import nn

from lwcompress.graph import LayerInfo, Source


def _source_bounds(
    model: nn.Module, src: Source, input_bounds: tuple[torch.Tensor, torch.Tensor], sigmas: float
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Per-channel (lo, hi) of one source, or None when nothing data-free is known about it."""
    if src.kind == "input":
        return input_bounds
    if src.kind != "bn":
        return None
    bn = model.get_submodule(src.name)
    gamma = bn.weight.detach() if bn.affine else torch.ones(bn.num_features)
    beta = bn.bias.detach() if bn.affine else torch.zeros(bn.num_features)
    return beta - sigmas * gamma.abs(), beta + sigmas * gamma.abs()


def _filled(bound: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A batch of one sample of `shape` (C, ...) holding the per-channel bound everywhere."""
    return bound.view(1, -1, *([1] * (len(shape) - 1))).expand(1, *shape).clone()


@torch.no_grad()
def input_ranges(
    model: nn.Module,
    layers: list[LayerInfo],
    sigmas: float,
    normalization: dict[str, list[float]],
) -> dict[str, tuple[float, float] | None]:
    """Per-tensor (lo, hi) of each layer's input; None where a source has no BatchNorm statistics.

    `model` is the unfolded model `layers` was analyzed on (with source shapes); `normalization` maps
    [0, 1] pixels to the model's input space.
    """
    mean, std = torch.tensor(normalization["mean"]), torch.tensor(normalization["std"])
    input_bounds = ((0 - mean) / std, (1 - mean) / std)
    ranges: dict[str, tuple[float, float] | None] = {}
    for info in layers:
        bounds = [_source_bounds(model, s, input_bounds, sigmas) for s in info.sources]
        if any(b is None for b in bounds) or any(s.shape is None for s in info.sources):
            ranges[info.name] = None
            continue
        lo = info.path(*[_filled(b[0], s.shape) for b, s in zip(bounds, info.sources, strict=True)])
        hi = info.path(*[_filled(b[1], s.shape) for b, s in zip(bounds, info.sources, strict=True)])
        ranges[info.name] = (float(lo.min()), float(hi.max()))
    return ranges
