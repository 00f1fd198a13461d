"""Data-free ranges of every layer's input, from BatchNorm statistics (the paper's input model).

A BatchNorm output is modelled as N(beta_c, gamma_c^2) per channel, so it lies in beta_c +- k|gamma_c| with
k = `sigmas`; the model input lies in the image's normalized pixel range. Every op on the elementwise path
(ReLU, ReLU6, adds, pooling, flatten, concat) is monotone, so running the layer's path on the per-channel
lower and upper bounds gives bounds of the layer input. Adds sum the bounds of their terms (`sums="bounds"`):
conservative, never clipping what the model calls typical. `sums="quadrature"` treats the terms as the
independent Gaussians the model says they are: the path runs on the extreme points of the k-sigma ellipsoid,
term i at mu_i +- k sigma_i^2 / ||sigma|| per channel, so a plain sum spans mu +- k ||sigma|| instead of
mu +- k sum(sigma) (a residual stream of three equal terms: 1/sqrt(3) of the width).
"""

from __future__ import annotations

import torch
from torch import nn

from lwcompress.compress.config import CompressorConfig
from lwcompress.compress.quantizer import affine_params, fake_quant, qrange
from lwcompress.generate.capture import visit_inputs
from lwcompress.generate.data import LayerData
from lwcompress.generate.generators import gaussian_params
from lwcompress.generate.inputs import GaussianSources, bn_moments, layer_stream, sample_shapes
from lwcompress.graph import LayerInfo, Source


def _source_bounds(
    model: nn.Module, src: Source, input_bounds: tuple[torch.Tensor, torch.Tensor], sigmas: float
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Per-channel (lo, hi) of one source, or None when nothing data-free is known about it."""
    if src.kind == "input":
        return input_bounds
    if src.kind != "bn":
        return None
    beta, std = bn_moments(model.get_submodule(src.name))
    return beta - sigmas * std, beta + sigmas * std


def _ellipsoid_extremes(
    model: nn.Module, sources: list[Source], sigmas: float
) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Per-source (lo, hi) whose elementwise sum is mu -+ k ||sigma|| (the k-sigma ellipsoid's extremes along the
    sum); None unless every source is a BatchNorm output of the same shape (only then is the sum channel-aligned)."""
    if any(s.kind != "bn" for s in sources) or len({s.shape for s in sources}) != 1:
        return None
    moments = [bn_moments(model.get_submodule(s.name)) for s in sources]
    norm = torch.stack([std for _, std in moments]).pow(2).sum(0).sqrt().clamp_min(torch.finfo(torch.float32).tiny)
    return [(beta - sigmas * std**2 / norm, beta + sigmas * std**2 / norm) for beta, std in moments]


def _filled(bound: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A batch of one sample of `shape` (C, ...) holding the per-channel bound everywhere."""
    return bound.view(1, -1, *([1] * (len(shape) - 1))).expand(1, *shape).clone()


@torch.no_grad()
def input_ranges(
    model: nn.Module,
    layers: list[LayerInfo],
    sigmas: float | dict[str, float],
    normalization: dict[str, list[float]],
    sums: str = "bounds",
) -> dict[str, tuple[float, float] | None]:
    """Per-tensor (lo, hi) of each layer's input; None where a source has no BatchNorm statistics.

    `model` is the unfolded model `layers` was analyzed on (with source shapes); `normalization` maps
    [0, 1] pixels to the model's input space; `sums`: how the terms of a residual add combine (module docstring).
    """
    mean, std = torch.tensor(normalization["mean"]), torch.tensor(normalization["std"])
    input_bounds = ((0 - mean) / std, (1 - mean) / std)
    ranges: dict[str, tuple[float, float] | None] = {}
    for info in layers:
        k = sigmas[info.name] if isinstance(sigmas, dict) else sigmas
        bounds = [_source_bounds(model, s, input_bounds, k) for s in info.sources]
        if sums == "quadrature" and len(info.sources) > 1:
            bounds = _ellipsoid_extremes(model, info.sources, k) or bounds
        if any(b is None for b in bounds) or any(s.shape is None for s in info.sources):
            ranges[info.name] = None
            continue
        lo = info.path(*[_filled(b[0], s.shape) for b, s in zip(bounds, info.sources, strict=True)])
        hi = info.path(*[_filled(b[1], s.shape) for b, s in zip(bounds, info.sources, strict=True)])
        ranges[info.name] = (float(lo.min()), float(hi.max()))
    return ranges


@torch.no_grad()
def mse_clip(samples: torch.Tensor, lo: float, hi: float, bits: int, grid: int = 60) -> tuple[float, float]:
    """Shrink [lo, hi] by the factor in [0.1, 1] that minimizes the squared quantization error of `samples`.

    A low-bit grid spread over a rare tail wastes levels on values that almost never occur; the best clip
    depends on the bit width, which a fixed number of sigmas cannot follow.
    """
    lo_t, hi_t = torch.tensor(lo), torch.tensor(hi)
    qmin, qmax = qrange(bits, False)
    best, best_err = (lo, hi), float("inf")
    for ratio in torch.linspace(1.0, 0.1, grid).tolist():
        scale, zero = affine_params(lo_t * ratio, hi_t * ratio, bits, False)
        err = float((fake_quant(samples, scale, zero, qmin, qmax) - samples).pow(2).mean())
        if err < best_err:
            best, best_err = (lo * ratio, hi * ratio), err
    return best


@torch.no_grad()
def mse_ranges(
    model: nn.Module,
    layers: list[LayerInfo],
    ranges: dict[str, tuple[float, float] | None],
    bits: dict[str, int | None],
    num_samples: int = 64,
    spatial_size: int = 8,
    seed: int = 0,
) -> dict[str, tuple[float, float] | None]:
    """`ranges` with each BN-fed layer's interval clipped for its input bit width (`bits[name]`) by `mse_clip`
    on samples of the BN-Gaussian input model. Layers fed by the image or by sources without statistics keep
    their interval: the pixel range is exact, and there is nothing data-free to calibrate the rest on."""
    out = dict(ranges)
    for index, info in enumerate(layers):
        rng, b = ranges.get(info.name), bits.get(info.name)
        if rng is None or b is None or any(s.kind != "bn" for s in info.sources):
            continue
        sources = GaussianSources(info, *gaussian_params(model, info), sample_shapes(info, spatial_size))
        out[info.name] = mse_clip(sources.sample(num_samples, layer_stream(seed, index)), *rng, b)
    return out


def calibrated_ranges(
    model: nn.Module,
    layers: list[LayerInfo],
    ranges: dict[str, tuple[float, float] | None],
    images: torch.Tensor,
    batch_stat_bn: bool,
    chunk: int = 64,
    device: torch.device | str = "cpu",
) -> dict[str, tuple[float, float] | None]:
    """`ranges` with each layer's interval replaced by the min/max of its input over `images` through the FP model
    (ZeroQ's calibration, on distilled images). Layers fed by the image keep the exact pixel range: generated
    images need not respect it."""
    names = [i.name for i in layers if ranges.get(i.name) is not None and all(s.kind != "input" for s in i.sources)]
    seen: dict[str, tuple[float, float]] = {}

    def widen(name: str, x: torch.Tensor) -> None:
        lo, hi = seen.get(name, (float("inf"), float("-inf")))
        seen[name] = (min(lo, float(x.min())), max(hi, float(x.max())))

    visit_inputs(model, names, images, batch_stat_bn, chunk, widen, device)
    return {**ranges, **seen}


def activation_ranges(
    model: nn.Module, layers: list[LayerInfo], config: CompressorConfig, normalization: dict[str, list[float]],
    data: LayerData,
) -> dict[str, tuple[float, float] | None]:  # fmt: skip
    """Each layer's input interval for `config` ({} without activation quantization): from BN statistics at the
    bit-aware number of sigmas, then clipped by MSE (`act_range=mse`) or replaced by what the generator's images
    show (`act_range=calibrated`, ZeroQ)."""
    abits = {i.name: config.setting_for(i.name, i.is_first, i.is_last).abits for i in layers}
    if all(b is None for b in abits.values()):
        return {}
    bits = {n: b or 8 for n, b in abits.items()}
    sigmas = {n: config.sigmas_for(b) for n, b in bits.items()}
    ranges = input_ranges(model, layers, sigmas, normalization, config.act_sums)
    if config.act_range == "mse":
        return mse_ranges(model, layers, ranges, bits)
    if config.act_range == "calibrated":
        return calibrated_ranges(model, layers, ranges, *data.images(), data.cfg.chunk, data.ctx.device)
    return ranges


def output_ranges(
    model: nn.Module, layers: list[LayerInfo], config: CompressorConfig, bits: int = 8
) -> dict[str, tuple[float, float] | None]:
    """Per-tensor (lo, hi) of each layer's output in the BN-statistics model: its BatchNorm's beta +- k |gamma| at
    the number of sigmas a `bits`-bit input gets (`CompressorConfig.sigmas_for`); None for a layer without a
    BatchNorm, whose output the model says nothing about. The grids a residual add's terms are read on
    (`compressor.integer_graph`)."""
    k = config.sigmas_for(bits)
    spans: dict[str, tuple[float, float] | None] = {}
    for info in layers:
        if info.bn is None:
            spans[info.name] = None
            continue
        beta, std = bn_moments(model.get_submodule(info.bn))
        spans[info.name] = (float((beta - k * std).min()), float((beta + k * std).max()))
    return spans
