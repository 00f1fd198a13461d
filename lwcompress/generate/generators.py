"""The layer-input generators by name: what each layer run trains on. Each is a `Generator` class that declares
what it can do (images, a domain network, real pixels); the pipeline asks the class, never the name.

bn_gaussian  the paper: BN outputs i.i.d. N(beta, gamma^2), model input N(0, 1), replayed through each layer's
             elementwise path; no convolution of an earlier layer runs
propagated   N(0, 1) images through the FP network once, every BN normalizing by the batch's own statistics:
             the same per-channel statistics, with correlations from the network itself
gaussian     N(0, 1) for every layer input (the naive ablation)
distilled    images optimized to match every BN's running statistics (ZeroQ / DeepInversion), through the FP
             network: the default (round 3), made once per model and seed and cached
genie        images made by a small generator network with learned latents, trained to match the same statistics
             (GENIE): round 4's candidate, cached as distilled's
hybrid       each batch mixed from distilled-image inputs and a cheap partner's (bn_gaussian or propagated)
real         inputs captured from real training images (not data-free: the ceiling)
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from lwcompress import io
from lwcompress.distributed import Ranks
from lwcompress.errors import UserError
from lwcompress.fields import bounded, changed_default, check, choice
from lwcompress.generate.capture import capture_inputs
from lwcompress.generate.distill import (
    AUTOCAST,
    BN_DISTANCES,
    ImageNetwork,
    Inversion,
    distill_images,
    network_images,
)
from lwcompress.generate.inputs import GaussianSources, LayerInputs, Pool, bn_moments, layer_stream, sample_shapes
from lwcompress.graph import LayerInfo
from lwcompress.models.checkpoint import weights_digest
from lwcompress.registry import Registry


@dataclass
class GeneratorConfig:
    """What every generator takes: `name` (the registered generator, or "none"), `num_images` (the captured pool of
    image generators), `chunk` (images per forward pass, and per batch-statistics group for propagated and
    distilled), `seed`. A generator with settings of its own declares a subclass (`Generator.config`)."""

    name: str = "none"
    num_images: int = bounded(256, 1)
    chunk: int = bounded(64, 2)
    seed: int = 0

    def __post_init__(self) -> None:
        check(self)


@dataclass
class PropagatedConfig(GeneratorConfig):
    """`smoothing`: Gaussian blur (pixels) of the noise images; natural images are spatially correlated."""

    name: str = "propagated"
    smoothing: float = bounded(0.0, 0.0, 16.0)


@dataclass
class DistilledConfig(PropagatedConfig):
    """Distillation of the (optionally smoothed) noise images: `steps` Adam steps at `lr` (cosine) per chunk, with
    optional image priors (DeepInversion's; generate.distill.Inversion): `tv_weight` (total variation),
    `l2_weight`, `class_weight` (cross-entropy towards a target class per image, the classes in turn),
    `first_bn_weight` (the first BatchNorm's statistics term weighted by it), `jitter` (random shifts of up to that
    many pixels every step), `flip` (random mirroring every step) and `swing` (every strided convolution's input
    shifted by up to that many pixels every step, GENIE's), `coarse` (that share of the steps at half resolution,
    DeepInversion's multi-resolution scheme: cheaper steps), `bn_distance` (per_bn / per_channel: each
    BatchNorm's mismatch in units of its running std, every BatchNorm alike; absolute: ZeroQ's), `bn_slack` (per
    channel, mismatches within that many running stds cost nothing: a batch's own sampling noise), `image_spread`
    (per BatchNorm and channel, the images' own means differ by at least that many running stds), `clip` (the
    images start and stay inside the range [0, 1] pixels take under the model's normalization), `backdrop` (that
    share of every image one flat level per channel, learned: an object on a plain background) and `precision`
    (bf16: the network's passes under bfloat16 autocast, ~2x faster at 224x224 on CPUs with AMX and on GPUs)."""

    name: str = "distilled"
    steps: int = bounded(200, 0)
    lr: float = bounded(0.25, 0.0)
    tv_weight: float = bounded(0.0, 0.0)
    l2_weight: float = bounded(0.0, 0.0)
    class_weight: float = bounded(0.0, 0.0)
    first_bn_weight: float = bounded(1.0, 0.0)
    jitter: int = bounded(0, 0)
    flip: bool = False
    swing: int = bounded(0, 0, 8)
    coarse: float = bounded(0.0, 0.0, 1.0)
    bn_distance: str = choice("absolute", *BN_DISTANCES)
    bn_slack: float = bounded(0.0, 0.0, 10.0)
    image_spread: float = bounded(0.0, 0.0, 10.0)
    # The default since round 14 (experiments/results/round14_tuning.md); runs made before it had neither.
    clip: bool = changed_default(True, before=False)
    backdrop: float = bounded(0.3, 0.0, 0.95, before=0.0)
    precision: str = choice("32", *AUTOCAST)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backdrop and self.coarse:
            raise UserError("generator.backdrop masks full-size images: set generator.backdrop=0 to use "
                            "generator.coarse")  # fmt: skip


@dataclass
class GenieConfig(DistilledConfig):
    """GENIE's images: a generator network per chunk (generate.distill.ImageNetwork) with `latent_dim` learned
    latents per image and `width` channels, its weights trained at `lr`, the latents at `lr_latent`, for `steps`
    steps; the priors as distilled's. Then, with `refine_steps`, the network's images are optimized as pixels for
    that many steps at `refine_lr` (no swing: per-pixel images do not survive it): the network gives the images'
    structure, the pixel steps the deep layers' statistics it leaves unmatched on larger networks. With
    `pixel_fraction`, the chunks that start in the last share of the images are per-pixel images distilled from
    noise instead, as generator=distilled makes them (`pixel_steps` at `pixel_lr`): the solver sees both domains.
    `smoothing` must stay 0. Defaults chosen on the validation split (experiments/results/round4_tuning.md): width 64
    and 100 steps match width 128 (GENIE's) and 200 steps within the seeds' spread at 2/5 of the cost; refinement
    and per-pixel chunks are off (round5_tuning.md: they mend torchvision MobileNetV2 W4A4 on the validation split,
    per-pixel chunks not on the test split)."""

    name: str = "genie"
    steps: int = bounded(100, 0)
    lr: float = bounded(0.01, 0.0)
    swing: int = bounded(1, 0, 8)
    latent_dim: int = bounded(256, 1)
    width: int = bounded(64, 2)
    lr_latent: float = bounded(0.1, 0.0)
    refine_steps: int = bounded(0, 0)
    refine_lr: float = bounded(0.05, 0.0)
    pixel_fraction: float = bounded(0.0, 0.0, 1.0)
    pixel_steps: int = bounded(200, 0)
    pixel_lr: float = bounded(0.25, 0.0)
    clip: bool = False  # the network's last BatchNorm sets the images
    backdrop: float = bounded(0.0, 0.0, 0.95)  # the network makes every pixel

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.smoothing:
            raise UserError("generator=genie draws no noise images to smooth: leave generator.smoothing at 0")
        if self.coarse:
            raise UserError("generator=genie's network makes full-size images: leave generator.coarse at 0")
        if self.clip:
            raise UserError("generator=genie's images are set by its network's last BatchNorm: leave generator.clip "
                            "false")  # fmt: skip
        if self.backdrop:
            raise UserError("generator=genie's network makes every pixel: leave generator.backdrop at 0")


@dataclass
class HybridConfig(DistilledConfig):
    """`distilled_fraction` of every batch comes from the distilled images, the rest from `partner`."""

    name: str = "hybrid"
    distilled_fraction: float = bounded(0.5, 0.0, 1.0)
    partner: str = choice("bn_gaussian", "bn_gaussian", "propagated")


@dataclass
class GenerationContext:
    """What generators may use besides the model: its input shape, real images for `real`, and a cache of the
    images a generator made (distillation is costly; the closed-form start and the layer runs share them).

    `shared_dir`: where generated images are kept on disk, chunk by chunk, so that the ranks of a job each make
    their share of them once and a restarted job makes none again. `cache_dir`: kept across runs; distilled images
    are left there under their key (weights and generator settings) and reused by any later run that asks for the
    same ones, e.g. every bit width of a sweep. `wall_s` adds up the time spent generating; `reused_wall_s` what
    the reused images once cost.
    """

    input_shape: tuple[int, ...]
    spatial_size: int
    real_images: torch.Tensor | None = None
    cache: dict = field(default_factory=dict)
    shared_dir: Path | None = None
    ranks: Ranks = field(default_factory=Ranks)
    device: torch.device | str = "cpu"  # where forward passes and distillation run; what is kept stays on the CPU
    cache_dir: Path | None = None
    wall_s: float = 0.0
    reused_wall_s: float = 0.0
    pixel_range: tuple[torch.Tensor, torch.Tensor] | None = None  # (lowest, highest) per channel: distill.pixel_range


class Generator(ABC):
    """A layer-data generator, registered by name in GENERATORS. What it can do is declared by the class, so the
    pipeline asks the class and never tests a name:

    config        its settings: a GeneratorConfig dataclass (a subclass with its own fields where it has some)
    makes_images  it has images (calibrated activation ranges, domain gaps, the guard)
    has_domain    one forward pass of a network over its images gives its layer inputs (sequential runs, the guard)
    pixels        its images are real pixels: image-fed layers may train, with their input quantized
    needs_real    it takes real training images (not data-free: the ceiling)
    """

    makes_images: ClassVar[bool] = False
    has_domain: ClassVar[bool] = False
    pixels: ClassVar[bool] = False
    needs_real: ClassVar[bool] = False
    config: ClassVar[type[GeneratorConfig]] = GeneratorConfig  # its settings; subclasses bring their own fields

    def __init__(self, cfg: GeneratorConfig) -> None:
        if not isinstance(cfg, self.config):
            raise UserError(f"generator={cfg.name} takes a {self.config.__name__}, not a {type(cfg).__name__}")
        self.cfg = cfg

    @abstractmethod
    def inputs(self, model: nn.Module, layers: list[LayerInfo], ctx: GenerationContext) -> dict[str, LayerInputs]:
        """Every layer's input batches for independent runs (inputs and targets from the FP `model`), by layer name:
        objects whose `sample(n, generator)` gives n inputs of the layer (N, C, ...) as float tensors."""

    def images(self, model: nn.Module, ctx: GenerationContext) -> tuple[torch.Tensor, bool]:
        """(images, whether BatchNorms normalize by their batch statistics on them)."""
        raise UserError(f"generator={self.cfg.name} makes no images; use one of {', '.join(able('makes_images'))}")

    def domain(self, model: nn.Module, ctx: GenerationContext) -> tuple[nn.Module, torch.Tensor]:
        """The BN network and the images whose plain eval-mode forward gives the layer inputs (sequential runs)."""
        raise _no_domain(self.cfg.name)

    def held_out_images(self, model: nn.Module, ctx: GenerationContext, n: int) -> torch.Tensor:
        """`n` domain images the layer runs did not train on, for the network-level guard: the first of the pool
        (making more would cost as much again)."""
        return self.images(model, ctx)[0][:n]


GENERATORS: Registry[type[Generator]] = Registry("generator", base=Generator, config=GeneratorConfig)


def _no_domain(name: str) -> UserError:
    return UserError(f"layerwise.mode=sequential needs generator={', '.join(able('has_domain'))}, not {name}: its "
                     "layer inputs come from no single forward pass (use layerwise.mode=independent)")  # fmt: skip


def able(capability: str) -> list[str]:
    """The registered generators whose class declares `capability` (for messages that name the choices)."""
    return [name for name in GENERATORS.names() if getattr(GENERATORS.get(name), capability)]


def generator_config(name: str, **settings: object) -> GeneratorConfig:
    """Generator `name`'s settings (its own config class) with `settings` over the defaults; an unknown setting is
    a one-line UserError that lists the known ones."""
    return GENERATORS.settings(name, **settings)


def generator(cfg: GeneratorConfig) -> Generator:
    """The generator `cfg` names (a UserError listing the choices for an unknown name)."""
    return GENERATORS.get(cfg.name)(cfg)


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
class BNGaussian(Generator):
    """The paper: BN outputs i.i.d. N(beta, gamma^2), the image N(0, 1), replayed through each layer's path."""

    def inputs(self, model: nn.Module, layers: list[LayerInfo], ctx: GenerationContext) -> dict[str, LayerInputs]:
        return {info.name: _gaussian_sources(model, info, ctx.spatial_size) for info in layers}


def bn_gaussian_inputs(model: nn.Module, layers: list[LayerInfo], spatial_size: int) -> dict[str, LayerInputs]:
    """The paper's input model of every layer whose sources all have one (BN outputs, the image); no images made."""
    return {info.name: _gaussian_sources(model, info, spatial_size) for info in layers
            if all(src.kind in ("input", "bn") for src in info.sources)}  # fmt: skip


def _gaussian_sources(model: nn.Module, info: LayerInfo, spatial_size: int) -> GaussianSources:
    return GaussianSources(info, *gaussian_params(model, info), sample_shapes(info, spatial_size))


@GENERATORS.register("gaussian")
class Gaussian(Generator):
    """N(0, 1) for every layer input (the naive ablation)."""

    def inputs(self, model: nn.Module, layers: list[LayerInfo], ctx: GenerationContext) -> dict[str, LayerInputs]:
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
    captured = capture_inputs(model, [i.name for i in layers], images, batch_stat_bn, cfg.chunk, ctx.device)
    return {name: Pool(x, ctx.spatial_size) for name, x in captured.items()}


def _noise_images(cfg: PropagatedConfig, ctx: GenerationContext) -> torch.Tensor:
    noise = torch.randn((cfg.num_images, *ctx.input_shape), generator=layer_stream(cfg.seed, 1 << 20))
    return smoothed(noise, cfg.smoothing) if cfg.smoothing > 0 else noise


def checked_images(images: object, cfg: GeneratorConfig, ctx: GenerationContext) -> torch.Tensor:
    """`images` if they are what `ImageGenerator.make` promises (1 to cfg.num_images finite float images of the
    model's input shape), else a one-line UserError naming the generator: a plug-in's mistake stops here, before
    any layer runs."""
    shape = tuple(images.shape) if isinstance(images, torch.Tensor) else None
    wrong = (
        f"a {type(images).__name__}, not a tensor" if shape is None
        else f"dtype {images.dtype}, not a float type" if not images.is_floating_point()
        else f"shape {shape}, not (N <= {cfg.num_images}, {', '.join(map(str, ctx.input_shape))})"
        if shape[1:] != tuple(ctx.input_shape) or not 0 < shape[0] <= cfg.num_images
        else "non-finite values" if not torch.isfinite(images).all()
        else None
    )  # fmt: skip
    if wrong is not None:
        raise UserError(f"generator={cfg.name}: make() returned {wrong}")
    return images


def checked_inputs(inputs: object, layers: list[LayerInfo], cfg: GeneratorConfig) -> dict[str, LayerInputs]:
    """`inputs` if they hold every layer's batches as `Generator.inputs` promises (a 2-sample draw of each is float,
    finite and of the layer's input shape), else a one-line UserError naming the generator and the layer."""
    if not isinstance(inputs, dict):
        raise UserError(f"generator={cfg.name}: inputs() returned a {type(inputs).__name__}, not a dict by layer name")
    missing = [info.name for info in layers if info.name not in inputs]
    if missing:
        raise UserError(f"generator={cfg.name}: inputs() has no entry for layer {', '.join(missing)}")
    for info in layers:
        try:
            x = inputs[info.name].sample(2, torch.Generator().manual_seed(0))
        except Exception as e:  # noqa: BLE001 (a plug-in's failure, reported in one line)
            raise UserError(
                f"generator={cfg.name}: layer {info.name}: sample() failed: {type(e).__name__}: {e}"
            ) from None
        want = info.input_shape[0] if info.input_shape else None
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else None
        if shape is None or not x.is_floating_point() or shape[0] != 2 or (want is not None and shape[1] != want):
            got = f"{x.dtype} {shape}" if shape is not None else type(x).__name__
            raise UserError(f"generator={cfg.name}: layer {info.name}: sample(2) gave {got}, not a float tensor of "
                            f"shape (2, {want}, ...)")  # fmt: skip
    return inputs


def smoothed(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """`images` blurred by a Gaussian of `sigma` pixels (reflected borders) and scaled back to unit variance per
    image: noise with the short-range spatial correlation of natural images, which white noise lacks."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    x = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    x = x - x.mean(dim=(1, 2, 3), keepdim=True)
    return x / x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)


class ImageGenerator(Generator):
    """Layer inputs captured from images run through the FP network; the images (`make`) are kept in the context's
    cache under `key`, so the closed-form start and the layer runs share them. `batch_stat_bn`: BatchNorms normalize
    by the images' own statistics (propagated noise)."""

    makes_images = True
    has_domain = True
    batch_stat_bn: ClassVar[bool] = False
    kind: ClassVar[str] = ""  # the images' name in the cache key (hybrid shares the distilled images)

    def key(self, model: nn.Module) -> tuple:
        """What decides the images: equal keys, the same images (the in-memory cache's key)."""
        return self.kind, weights_digest(model), self.cfg.num_images, self.cfg.seed, self.cfg.chunk

    @abstractmethod
    def make(self, model: nn.Module, ctx: GenerationContext) -> torch.Tensor:
        """`cfg.num_images` images (N, *ctx.input_shape), float, normalized as the model's inputs."""

    def images(self, model: nn.Module, ctx: GenerationContext) -> tuple[torch.Tensor, bool]:
        key = self.key(model)
        if key not in ctx.cache:
            ctx.cache[key] = checked_images(self.make(model, ctx), self.cfg, ctx)
        return ctx.cache[key], self.batch_stat_bn

    def inputs(self, model: nn.Module, layers: list[LayerInfo], ctx: GenerationContext) -> dict[str, LayerInputs]:
        return _pools(model, layers, *self.images(model, ctx), self.cfg, ctx)

    @torch.no_grad()
    def domain(self, model: nn.Module, ctx: GenerationContext) -> tuple[nn.Module, torch.Tensor]:
        """real, distilled: the model itself on the images. propagated: a copy whose BatchNorms hold the noise
        images' own statistics (averaged over chunks) in place of the training ones, so every BN output again has
        mean beta and std |gamma| per channel; folding that copy gives each layer in the "synthetic domain"."""
        images, batch_stat_bn = self.images(model, ctx)
        return (batch_statistics(model, images, self.cfg.chunk) if batch_stat_bn else model), images


@GENERATORS.register("propagated")
class Propagated(ImageGenerator):
    """N(0, 1) images (optionally smoothed) through the FP network, every BN normalizing by the batch's own
    statistics: the paper's per-channel statistics, with correlations from the network itself."""

    batch_stat_bn = True
    kind = "propagated"
    config = PropagatedConfig

    def key(self, model: nn.Module) -> tuple:
        return *super().key(model), self.cfg.smoothing

    def make(self, model: nn.Module, ctx: GenerationContext) -> torch.Tensor:
        return _noise_images(self.cfg, ctx)

    def held_out_images(self, model: nn.Module, ctx: GenerationContext, n: int) -> torch.Tensor:
        """Fresh noise: the domain takes any N(0, 1) images, so these are truly held out."""
        shape = self.images(model, ctx)[0].shape[1:]
        noise = torch.randn((n, *shape), generator=layer_stream(self.cfg.seed, 1 << 21))
        return smoothed(noise, self.cfg.smoothing) if self.cfg.smoothing > 0 else noise


@GENERATORS.register("distilled")
class Distilled(ImageGenerator):
    """Images optimized to match every BN's running statistics (ZeroQ / DeepInversion), through the FP network."""

    kind = "distilled"
    config = DistilledConfig

    def key(self, model: nn.Module) -> tuple:
        """Also the name of the images kept across runs (`GenerationContext.cache_dir`)."""
        cfg = self.cfg
        return (self.kind, weights_digest(model), cfg.num_images, cfg.seed, inversion(cfg), cfg.chunk, cfg.smoothing)

    def make(self, model: nn.Module, ctx: GenerationContext) -> torch.Tensor:
        digest = hashlib.sha256(repr(self.key(model)).encode()).hexdigest()[:16]
        return _reused(ctx, digest, lambda: _chunked(self.cfg, ctx, digest, self.chunk_images(model, ctx)))

    def chunk_images(self, model: nn.Module, ctx: GenerationContext) -> Callable[[int, int], torch.Tensor]:
        """f(start, count): images start .. start + count, optimized as one batch on `ctx.device`, returned on the
        CPU (the noise they start from is drawn once for all chunks)."""
        noise, inv = _noise_images(self.cfg, ctx), inversion(self.cfg)
        if inv.clip and ctx.pixel_range is None:
            raise UserError(
                "generator.clip keeps the images inside the pixel range: give the GenerationContext a "
                "pixel_range (compress() takes it from the normalization), or set generator.clip=false"
            )

        def chunk(start: int, count: int) -> torch.Tensor:
            part = noise[start : start + count].to(ctx.device)
            return distill_images(model, part, chunk=count, inversion=inv, seed=self.cfg.seed + start,
                                  pixel_range=ctx.pixel_range).cpu()  # fmt: skip

        return chunk


@GENERATORS.register("genie")
class Genie(Distilled):
    """Images made by a small generator network with learned latents, trained to match every BN's running
    statistics (GENIE, CVPR 2023): the network's convolutions correlate neighbouring pixels as natural images are,
    where per-pixel optimization (distilled) leaves pixel noise the BN statistics cannot see."""

    kind = "genie"
    config = GenieConfig

    def key(self, model: nn.Module) -> tuple:
        cfg = self.cfg
        refine = (cfg.refine_steps, cfg.refine_lr) if cfg.refine_steps else ()
        pixels = (cfg.pixel_fraction, cfg.pixel_steps, cfg.pixel_lr) if cfg.pixel_fraction else ()
        return *super().key(model), network(cfg), *refine, *pixels

    def chunk_images(self, model: nn.Module, ctx: GenerationContext) -> Callable[[int, int], torch.Tensor]:
        spec, inv, cfg = network(self.cfg), inversion(self.cfg), self.cfg
        refine = replace(inv, steps=cfg.refine_steps, lr=cfg.refine_lr, swing=0)
        first_pixel_image = cfg.num_images - round(cfg.num_images * cfg.pixel_fraction)
        per_pixel = Distilled(pixel_config(cfg)).chunk_images(model, ctx) if cfg.pixel_fraction else None

        def chunk(start: int, count: int) -> torch.Tensor:
            if per_pixel is not None and start >= first_pixel_image:
                return per_pixel(start, count)
            images = network_images(model, count, ctx.input_shape, chunk=count, network=spec, inversion=inv,
                                    seed=cfg.seed + start, device=ctx.device)  # fmt: skip
            if cfg.refine_steps:
                images = distill_images(model, images, chunk=count, inversion=refine, seed=cfg.seed + start)
            return images.cpu()

        return chunk


@GENERATORS.register("real")
class Real(ImageGenerator):
    """Inputs captured from real training images (not data-free: the ceiling)."""

    pixels = True
    needs_real = True
    kind = "real"

    def make(self, model: nn.Module, ctx: GenerationContext) -> torch.Tensor:
        if ctx.real_images is None:
            raise UserError("generator=real needs real training images (a data module); it is the non-data-free "
                            "ceiling")  # fmt: skip
        return ctx.real_images[: self.cfg.num_images]


@GENERATORS.register("hybrid")
class Hybrid(Distilled):
    """Each batch mixed from distilled-image inputs and a cheap partner's (bn_gaussian or propagated); no single
    forward pass gives its inputs."""

    has_domain = False
    config = HybridConfig

    def inputs(self, model: nn.Module, layers: list[LayerInfo], ctx: GenerationContext) -> dict[str, LayerInputs]:
        distilled = super().inputs(model, layers, ctx)
        partner = GENERATORS.get(self.cfg.partner)(self.cfg).inputs(model, layers, ctx)
        return {name: Mixed(distilled[name], partner[name], self.cfg.distilled_fraction) for name in distilled}

    def domain(self, model: nn.Module, ctx: GenerationContext) -> tuple[nn.Module, torch.Tensor]:
        return Generator.domain(self, model, ctx)


@dataclass
class Mixed:
    """Every batch: round(n * fraction) items from `first`, the rest from `second` (an exact, not a random, mix)."""

    first: LayerInputs
    second: LayerInputs
    fraction: float

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        k = round(n * self.fraction)
        parts = [src.sample(m, generator) for src, m in ((self.first, k), (self.second, n - k)) if m > 0]
        return torch.cat(parts)


def source_images(model: nn.Module, cfg: GeneratorConfig, ctx: GenerationContext) -> tuple[torch.Tensor, bool]:
    """(images, whether BatchNorms normalize by batch statistics on them) of an image-based generator: noise for
    propagated, distilled images for distilled and hybrid, real images for real. Cached in `ctx`."""
    return generator(cfg).images(model, ctx)


def _reused(ctx: GenerationContext, digest: str, make: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Images from `ctx.cache_dir` if an earlier run made them (an unreadable file is made again), else made and
    left there; the time spent goes to `ctx.wall_s`, what reused images once cost to `ctx.reused_wall_s`."""
    path = ctx.cache_dir / f"{digest}.pt" if ctx.cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            entry = io.torch_load(path)
            ctx.reused_wall_s += float(entry["wall_s"])
            return entry["images"]
        except (UserError, KeyError, TypeError):
            pass
    clock = time.perf_counter()
    images = make()
    wall_s = time.perf_counter() - clock
    ctx.wall_s += wall_s
    if path is not None and ctx.ranks.is_main:
        io.torch_save(path, {"images": images, "wall_s": torch.tensor(wall_s)})
    return images


def _chunked(
    cfg: GeneratorConfig, ctx: GenerationContext, key: str, make: Callable[[int, int], torch.Tensor]
) -> torch.Tensor:  # fmt: skip
    """cfg.num_images images, `make(start, count)` per chunk (each chunk is optimized on its own). With a
    `shared_dir`, each chunk is a file there: the ranks split the chunks, and a restarted job reuses the finished
    ones."""
    starts = list(range(0, cfg.num_images, cfg.chunk))

    def part(i: int) -> torch.Tensor:
        return make(starts[i], min(cfg.chunk, cfg.num_images - starts[i]))

    if ctx.shared_dir is None:
        if ctx.ranks.world_size > 1:
            raise ValueError("ranks share generated images through files: give the context a shared_dir")
        return torch.cat([part(i) for i in range(len(starts))])
    folder = ctx.shared_dir / "images" / key

    def run(i: int) -> None:
        if not (folder / f"{i}.pt").is_file():
            io.torch_save(folder / f"{i}.pt", part(i))

    ctx.ranks.run_shared([1.0] * len(starts), run, "distilled-images")
    return torch.cat([io.torch_load(folder / f"{i}.pt") for i in range(len(starts))])


def inversion(cfg: DistilledConfig) -> Inversion:
    """The distillation settings of `cfg`."""
    return Inversion(steps=cfg.steps, lr=cfg.lr, tv_weight=cfg.tv_weight, l2_weight=cfg.l2_weight,
                     class_weight=cfg.class_weight, first_bn_weight=cfg.first_bn_weight, jitter=cfg.jitter,
                     flip=cfg.flip, swing=cfg.swing, coarse=cfg.coarse, bn_distance=cfg.bn_distance,
                     bn_slack=cfg.bn_slack, image_spread=cfg.image_spread, clip=cfg.clip,
                     backdrop=cfg.backdrop,
                     precision=cfg.precision)  # fmt: skip


def pixel_config(cfg: GenieConfig) -> DistilledConfig:
    """The generator=distilled settings of genie's per-pixel chunks: its priors, `pixel_steps` at `pixel_lr`, no
    swing."""
    common = {f.name: getattr(cfg, f.name) for f in fields(DistilledConfig)}
    return DistilledConfig(**{**common, "name": "distilled", "steps": cfg.pixel_steps, "lr": cfg.pixel_lr, "swing": 0})


def network(cfg: GenieConfig) -> ImageNetwork:
    """The generator network of `cfg`."""
    return ImageNetwork(latent_dim=cfg.latent_dim, width=cfg.width, lr_latent=cfg.lr_latent)


def check_sequential(name: str) -> None:
    """Sequential layer runs need a network forward to run the compressed layers in: a one-line error otherwise."""
    if not GENERATORS.get(name).has_domain:
        raise _no_domain(name)


def generator_domain(model: nn.Module, cfg: GeneratorConfig, ctx: GenerationContext) -> tuple[nn.Module, torch.Tensor]:
    """The BN network and the images whose plain eval-mode forward gives the generator's layer inputs, for
    sequential runs (a layer fed by the already compressed layers before it needs a network to run them in)."""
    return generator(cfg).domain(model, ctx)


@torch.no_grad()
def batch_statistics(model: nn.Module, images: torch.Tensor, chunk: int) -> nn.Module:
    """A copy of `model` whose BatchNorms hold the statistics each one sees on `images` (chunk by chunk, every BN
    normalizing by the chunk's own statistics, averaged over the chunks) in place of the training ones."""
    domain = copy.deepcopy(model).eval()
    norms = [m for m in domain.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the chunks
        bn.train()
    for start in range(0, len(images), chunk):
        domain(images[start : start + chunk])
    return domain.eval()


@torch.no_grad()
def domain_gaps(
    model: nn.Module, layers: list[LayerInfo], cfg: GeneratorConfig, ctx: GenerationContext
) -> dict[str, float]:
    """How far each layer's generated inputs are from what it met in training, seen through its own weights: the
    statistics of its (FP) output on the generator's images against the training statistics its BatchNorm holds,
    as the mean over output channels of KL(N(generated mean, var) || N(training mean, var)). Zero for inputs as
    the training images gave them; large where the inputs' correlations are off (noise images in early layers).
    Layers with no BatchNorm after them are absent. The data-free signal of where a layer's learned rounding may
    fit the generator rather than the data (layerwise.max_gap)."""
    images, _ = source_images(model, cfg, ctx)
    seen = batch_statistics(model, images, cfg.chunk)
    gaps = {}
    for info in layers:
        if info.bn is None:
            continue
        train, gen = model.get_submodule(info.bn), seen.get_submodule(info.bn)
        var_t, var_g = train.running_var.double().clamp_min(1e-12), gen.running_var.double().clamp_min(1e-12)
        diff = (gen.running_mean - train.running_mean).double()
        kl = 0.5 * (torch.log(var_t / var_g) + (var_g + diff**2) / var_t - 1)
        gaps[info.name] = float(kl.mean())
    return gaps


def build_inputs(
    model: nn.Module, layers: list[LayerInfo], cfg: GeneratorConfig, ctx: GenerationContext
) -> dict[str, LayerInputs]:
    """Layer inputs for every layer in `layers` (analyzed on the unfolded FP `model`) by `cfg.name`."""
    return generator(cfg).inputs(model, layers, ctx)
