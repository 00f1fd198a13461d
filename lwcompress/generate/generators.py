"""The layer-input generators by name: what each layer run trains on.

bn_gaussian  the paper: BN outputs i.i.d. N(beta, gamma^2), model input N(0, 1), replayed through each layer's
             elementwise path; no convolution of an earlier layer runs
propagated   N(0, 1) images through the FP network once, every BN normalizing by the batch's own statistics:
             the same per-channel statistics, with correlations from the network itself
gaussian     N(0, 1) for every layer input (the naive ablation)
real         inputs captured from real training images (not data-free: the ceiling)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from lwcompress.errors import UserError
from lwcompress.fields import bounded, check, choice
from lwcompress.generate.capture import capture_inputs
from lwcompress.generate.inputs import GaussianSources, LayerInputs, Pool, bn_moments, layer_stream, sample_shapes
from lwcompress.graph import LayerInfo
from lwcompress.registry import Registry


@dataclass
class GeneratorConfig:
    """`num_images`: size of the captured pool (propagated, real); `chunk`: images per forward pass (and per
    batch-statistics group for propagated)."""

    name: str = choice("propagated", "none", "bn_gaussian", "propagated", "gaussian", "real")
    num_images: int = bounded(256, 1)
    chunk: int = bounded(64, 2)
    seed: int = 0

    def __post_init__(self) -> None:
        check(self)


@dataclass
class GenerationContext:
    """What generators may use besides the model: its input shape, and real images for `real`."""

    input_shape: tuple[int, ...]
    spatial_size: int
    real_images: torch.Tensor | None = None


Builder = Callable[[nn.Module, list[LayerInfo], GeneratorConfig, GenerationContext], dict[str, LayerInputs]]
GENERATORS: Registry[Builder] = Registry("generator")


def gaussian_params(model: nn.Module, info: LayerInfo) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-source (mean, std) per channel under the paper's model: BN outputs N(beta, gamma^2), the image N(0, 1)."""
    means, stds = [], []
    for src in info.sources:
        if src.kind == "input":
            means.append(torch.zeros(src.channels))
            stds.append(torch.ones(src.channels))
        elif src.kind == "bn":
            beta, std = bn_moments(model.get_submodule(src.name))
            means.append(beta)
            stds.append(std)
        else:
            raise UserError(
                f"generator=bn_gaussian: the input of layer {info.name} comes from {src.name}, which has no "
                "BatchNorm statistics; use generator=propagated"
            )
    return means, stds


@GENERATORS.register("bn_gaussian")
def bn_gaussian(model: nn.Module, layers: list[LayerInfo], cfg: GeneratorConfig, ctx: GenerationContext):
    out: dict[str, LayerInputs] = {}
    for info in layers:
        means, stds = gaussian_params(model, info)
        out[info.name] = GaussianSources(info, means, stds, sample_shapes(info, ctx.spatial_size))
    return out


@GENERATORS.register("gaussian")
def gaussian(model: nn.Module, layers: list[LayerInfo], cfg: GeneratorConfig, ctx: GenerationContext):
    out: dict[str, LayerInputs] = {}
    for info in layers:
        shape = info.input_shape
        if len(shape) >= 3:
            shape = (shape[0], *(min(ctx.spatial_size, s) for s in shape[1:]))
        out[info.name] = _StandardNormal(shape)
    return out


@dataclass
class _StandardNormal:
    shape: tuple[int, ...]

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn((n, *self.shape), generator=generator)


def _pools(
    model: nn.Module, layers: list[LayerInfo], images: torch.Tensor, batch_stat_bn: bool, cfg: GeneratorConfig,
    ctx: GenerationContext,
) -> dict[str, LayerInputs]:  # fmt: skip
    captured = capture_inputs(model, [i.name for i in layers], images, batch_stat_bn, cfg.chunk)
    return {name: Pool(x, ctx.spatial_size) for name, x in captured.items()}


def _noise_images(cfg: GeneratorConfig, ctx: GenerationContext) -> torch.Tensor:
    return torch.randn((cfg.num_images, *ctx.input_shape), generator=layer_stream(cfg.seed, 1 << 20))


@GENERATORS.register("propagated")
def propagated(model: nn.Module, layers: list[LayerInfo], cfg: GeneratorConfig, ctx: GenerationContext):
    return _pools(model, layers, _noise_images(cfg, ctx), True, cfg, ctx)


@GENERATORS.register("real")
def real(model: nn.Module, layers: list[LayerInfo], cfg: GeneratorConfig, ctx: GenerationContext):
    return _pools(model, layers, _real_images(cfg, ctx), False, cfg, ctx)


def _real_images(cfg: GeneratorConfig, ctx: GenerationContext) -> torch.Tensor:
    if ctx.real_images is None:
        raise UserError("generator=real needs real training images (a data module); it is the non-data-free ceiling")
    return ctx.real_images[: cfg.num_images]


SEQUENTIAL_GENERATORS = ("propagated", "real")


@torch.no_grad()
def generator_domain(model: nn.Module, cfg: GeneratorConfig, ctx: GenerationContext) -> tuple[nn.Module, torch.Tensor]:
    """The BN network and the images whose plain eval-mode forward gives the generator's layer inputs, for
    sequential runs (a layer fed by the already compressed layers before it needs a network to run them in).

    real: the model itself on the real images. propagated: a copy whose BatchNorms hold the noise images' own
    statistics (averaged over chunks) in place of the training ones, so every BN output again has mean beta and
    std |gamma| per channel; folding that copy gives each layer in the "synthetic domain".
    """
    if cfg.name == "real":
        return model, _real_images(cfg, ctx)
    if cfg.name != "propagated":
        raise UserError(
            f"layerwise.mode=sequential needs generator={' or '.join(SEQUENTIAL_GENERATORS)}, not {cfg.name}: "
            "its layer inputs come from no forward pass (use layerwise.mode=independent)"
        )
    images = _noise_images(cfg, ctx)
    domain = copy.deepcopy(model).eval()
    norms = [m for m in domain.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the chunks
        bn.train()
    for start in range(0, len(images), cfg.chunk):
        domain(images[start : start + cfg.chunk])
    return domain.eval(), images


def build_inputs(
    model: nn.Module, layers: list[LayerInfo], cfg: GeneratorConfig, ctx: GenerationContext
) -> dict[str, LayerInputs]:
    """Layer inputs for every layer in `layers` (analyzed on the unfolded FP `model`) by `cfg.name`."""
    return GENERATORS.get(cfg.name)(model, layers, cfg, ctx)
