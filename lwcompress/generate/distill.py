"""Distilled images (ZeroQ / DeepInversion): inputs optimized so that every BatchNorm sees batch statistics equal
to its running (training) statistics. The high-compute generative baseline: each step is a forward and backward
pass of the whole network, where the layer-wise generators run no convolution at all (bn_gaussian) or one forward.

Beyond ZeroQ's BN-statistics loss, DeepInversion's image priors are options (`Inversion`): a class term (each image
pushed towards a target class by cross-entropy on the network's own logits), a heavier weight on the first
BatchNorm (the one that sees the image's low-level statistics), random shifts and flips every step (the network's
translation and mirror invariance: features that survive them are image-like, not pixel noise), total variation
and an L2 prior, and GENIE's swing: every strided convolution sees its input shifted by a random offset (made
for generator images; per-pixel images do not survive it, experiments/results/round4_tuning.md §2).

What is optimized is an image source: the pixels themselves (`PixelImages`: ZeroQ, DeepInversion) or a small
generator network with one learned latent per image (`NetworkImages`: GENIE), whose convolutions make
neighbouring pixels correlated as natural images are.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@dataclass(frozen=True, repr=False)
class Inversion:
    """How images are optimized: `steps` Adam steps at `lr` (cosine) per chunk; the priors weighted by `tv_weight`,
    `l2_weight`, `class_weight` (0: ZeroQ's BN statistics only); the first BatchNorm's term times `first_bn_weight`;
    each step sees the images shifted by up to `jitter` pixels (circularly) and, if `flip`, mirrored with
    probability 1/2; with `swing`, every strided convolution's input is shifted by up to that many pixels (reflected
    at the border). With `coarse` > 0, that share of the steps optimizes the images at half their height and width
    (DeepInversion's multi-resolution scheme: such a step costs a third to two fifths of a full one,
    round8_tuning.md), which are then upsampled for the rest; only for per-pixel images. `bn_distance`
    (`BNStatistics`): ZeroQ's "absolute" distance lets the wide, large-scale BatchNorms dominate; "per_bn" divides
    each BatchNorm's term by the norm of its running std, "per_channel" each channel's by its running std (RMS over
    the channels): every BatchNorm weighs alike. `bn_slack` > 0: per channel, a mean offset or std difference within
    that many running stds costs nothing (DSG's slack alignment, Zhang et al. CVPR 2021, with a margin in units of
    the running std instead of DSG's real-data percentiles): a chunk's statistics need only fall where a real
    batch's would, not on the running ones exactly, which leaves the images free to differ where ZeroQ's loss pulls
    every one towards the same statistics. `image_spread` > 0: per BatchNorm and channel, the images' own means must
    differ by at least that many running stds (their std over the chunk): real images do (0.23-0.35 in the first two
    BatchNorms of both MobileNetV2 checkpoints, round13_tuning.md), where ZeroQ's batch loss leaves distilled ones
    at a third of that, each image carrying the running statistics itself. `clip`: per-pixel images start and stay
    inside the range real pixels can take (`pixel_range`: [0, 1] through the model's normalization), projected after
    every step (DeepInversion's clipping): where real images sit at black or white, unbounded ones spread into
    values no image has. `backdrop` > 0: outside one random ellipse per image (about that share of its pixels), the
    image shows one flat level per channel, learned with the rest: real images hold large plain regions (Fashion-MNIST:
    half its pixels at black), which the BN statistics alone never produce, so a compressed first block is never
    trained on one (round14_tuning.md). `precision` "bf16": the network's forward and backward under bfloat16
    autocast (the statistics and the loss stay float32): about 2x faster for ResNets at 224x224 on CPUs with AMX
    (experiments/results/profile_224.md) and on GPUs; depthwise convolutions are slower in bfloat16 on CPUs."""

    steps: int = 200
    lr: float = 0.25
    tv_weight: float = 0.0
    l2_weight: float = 0.0
    class_weight: float = 0.0
    first_bn_weight: float = 1.0
    jitter: int = 0
    flip: bool = False
    swing: int = 0
    coarse: float = 0.0
    bn_distance: str = "absolute"
    bn_slack: float = field(default=0.0, metadata={"named_when_set": True})
    image_spread: float = field(default=0.0, metadata={"named_when_set": True})
    clip: bool = field(default=False, metadata={"named_when_set": True})
    backdrop: float = field(default=0.0, metadata={"named_when_set": True})
    precision: str = "32"

    def __post_init__(self) -> None:
        for name, value, allowed in [
            ("bn_distance", self.bn_distance, BN_DISTANCES),
            ("precision", self.precision, AUTOCAST),
        ]:
            if value not in allowed:
                raise ValueError(f"Inversion.{name}={value!r}: one of {', '.join(allowed)}")
        if self.bn_slack < 0:
            raise ValueError(f"Inversion.bn_slack={self.bn_slack!r}: a margin, at least 0")
        if self.image_spread < 0:
            raise ValueError(f"Inversion.image_spread={self.image_spread!r}: a spread, at least 0")
        if not 0 <= self.backdrop < 1:
            raise ValueError(f"Inversion.backdrop={self.backdrop!r}: a share of the image, in [0, 1)")

    def __repr__(self) -> str:
        """The dataclass's repr, except that a field added after the images' cache names existed (metadata
        `named_when_set`) appears only when it differs from its default: its repr names a set of distilled images
        (`Distilled.key`), and a new option at its default must keep every cached set valid."""
        shown = (f for f in fields(self) if not f.metadata.get("named_when_set") or getattr(self, f.name) != f.default)
        return f"{type(self).__qualname__}({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in shown)})"


AUTOCAST = {"32": None, "bf16": torch.bfloat16}  # Inversion.precision -> the autocast dtype of the network's passes


@dataclass(frozen=True)
class ImageNetwork:
    """GENIE's generator: `latent_dim` learned latents per image through a linear layer onto a quarter-size grid of
    `width` channels (GENIE's 128; 64 here, round4_tuning.md), two (upsample, 3x3 conv, BN) stages and a tanh,
    normalized per channel; the network's weights at the distillation's `lr`, the latents at `lr_latent`."""

    latent_dim: int = 256
    width: int = 64
    lr_latent: float = 0.1


class _ShiftedMoments(torch.autograd.Function):
    """Per image and channel (dims 0, 1) of x - shift: the mean and the mean square over the remaining dims, with a
    one-pass elementwise backward. A distillation step spent a third of its time in Tensor.var and another sixth in
    the backward of mean/pow chains; the shift (the running mean) keeps E[d^2] - E[d]^2 free of cancellation. A
    batch's moments are the mean of its images' (every image has as many elements)."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dims = list(range(2, x.ndim))
        shifted = x - shift.view([-1 if d == 1 else 1 for d in range(x.ndim)])
        ctx.save_for_backward(shifted)
        ctx.count = math.prod(x.shape[2:])
        if not dims:
            return shifted, shifted * shifted
        return shifted.sum(dims) / ctx.count, (shifted * shifted).sum(dims) / ctx.count

    @staticmethod
    def backward(ctx: object, grad_offset: torch.Tensor, grad_second: torch.Tensor) -> tuple[torch.Tensor, None]:
        (shifted,) = ctx.saved_tensors
        shape = [*grad_offset.shape] + [1] * (shifted.ndim - 2)
        scale, bias = (2 * grad_second / ctx.count).view(shape), (grad_offset / ctx.count).view(shape)
        return torch.addcmul(bias, shifted, scale), None


class _PreHooks:
    """While active, `_hook` runs as a forward pre-hook of every module in `self.modules`."""

    modules: list[nn.Module]

    def _hook(self, module: nn.Module, args: tuple) -> tuple | None:
        raise NotImplementedError

    def __enter__(self) -> _PreHooks:
        self.handles = [m.register_forward_pre_hook(self._hook) for m in self.modules]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()


BN_DISTANCES = {  # BNStatistics' distance -> a BN's term from its mean offset, std difference and running std
    "absolute": lambda offset, std_diff, running_std: offset.norm() + std_diff.norm(),
    "per_bn": lambda offset, std_diff, running_std: (offset.norm() + std_diff.norm()) / running_std.norm(),
    "per_channel": lambda offset, std_diff, running_std: (
        ((offset / running_std).norm() + (std_diff / running_std).norm()) / math.sqrt(len(running_std))
    ),
}


class BNStatistics(_PreHooks):
    """While active, sums over the model's BatchNorms ZeroQ's distance between each BN input's batch statistics
    and the running ones: ||mean_batch - running_mean||_2 + ||std_batch - running_std||_2, per BN, the first BN's
    term times `first_weight`. `distance` "per_bn": the term divided by ||running_std||_2; "per_channel": both
    differences divided by the running std per channel and the norms by sqrt(channels). Both are the
    root-mean-square relative mismatch when a BN's channels share one scale, alike for every BN's width and scale;
    per channel, a channel of tiny variance weighs as much as any other. With `slack`, each channel's two
    differences shrink towards 0 by `slack` running stds (and stop there) before any distance. With `spread`, each
    BN with spatial inputs adds, in the same distance, by how much the std over the images of their own per-channel
    means falls short of `spread` running stds: the batch must hold images that differ from one another."""

    def __init__(
        self, model: nn.Module, first_weight: float = 1.0, distance: str = "absolute", slack: float = 0.0,
        spread: float = 0.0,
    ) -> None:  # fmt: skip
        if distance not in BN_DISTANCES:
            raise ValueError(f"unknown BN distance {distance!r}: one of {', '.join(BN_DISTANCES)}")
        self.modules = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        if not self.modules:
            raise ValueError("the model has no BatchNorm with running statistics to match")
        self.weights = {id(bn): first_weight if i == 0 else 1.0 for i, bn in enumerate(self.modules)}
        self.distance, self.slack, self.spread = distance, slack, spread
        self.loss: torch.Tensor | None = None

    def _hook(self, bn: _BatchNorm, args: tuple) -> None:
        x = args[0]
        image_offset, image_second = _ShiftedMoments.apply(x.float(), bn.running_mean)  # float32 under autocast
        offset, second = image_offset.mean(0), image_second.mean(0)
        var = (second - offset.pow(2)).clamp_min(0)
        running_std = (bn.running_var + bn.eps).sqrt()
        std_diff = (var + bn.eps).sqrt() - running_std
        if self.slack:
            offset, std_diff = ((d.abs() - self.slack * running_std).clamp_min(0) for d in (offset, std_diff))
        term = BN_DISTANCES[self.distance](offset, std_diff, running_std)
        if self.spread and len(x) > 1 and math.prod(x.shape[2:]) > 1:
            between = (image_offset.var(0) + bn.eps).sqrt()
            short = (self.spread * running_std - between).clamp_min(0)
            term = term + BN_DISTANCES[self.distance](torch.zeros_like(short), short, running_std)
        term = self.weights[id(bn)] * term
        self.loss = term if self.loss is None else self.loss + term


def bn_statistics_loss(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The BN-statistics distance of one batch of `images` through `model` (eval mode: running statistics)."""
    with BNStatistics(model) as stats:
        model.eval()(images)
    return stats.loss


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (DeepInversion's smoothness prior)."""
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


class PixelImages(nn.Module):
    """The images themselves are the parameters (ZeroQ, DeepInversion), started from `start`; with `bounds` (lowest,
    highest value per channel), kept inside them. With `backdrop` (N, 1, H, W, True where flat), those pixels of
    each image show one learned level per channel instead (started at the start's mean there)."""

    def __init__(
        self, start: torch.Tensor, lr: float, bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
        backdrop: torch.Tensor | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.pixels = nn.Parameter(start.clone())
        self.lr = lr
        shape = (1, -1, *[1] * (start.ndim - 2))
        self.bounds = None if bounds is None else tuple(b.to(start.device).view(shape) for b in bounds)
        self.backdrop = None if backdrop is None else backdrop.to(start.device)
        self.levels = None
        if self.backdrop is not None:
            flat = self.backdrop.to(start.dtype)
            dims = list(range(2, start.ndim))
            level = (start * flat).sum(dims, keepdim=True) / flat.sum(dims, keepdim=True).clamp_min(1)
            self.levels = nn.Parameter(level)
        self.project()

    def forward(self) -> torch.Tensor:
        if self.backdrop is None:
            return self.pixels
        return torch.where(self.backdrop, self.levels, self.pixels)

    @torch.no_grad()
    def project(self) -> None:
        """Back inside the bounds (after an optimizer step)."""
        if self.bounds is not None:
            for p in (self.pixels, self.levels):
                if p is not None:
                    p.copy_(torch.maximum(torch.minimum(p, self.bounds[1]), self.bounds[0]))

    def param_groups(self) -> list[dict]:
        return [{"params": [self.pixels] + ([self.levels] if self.levels is not None else []), "lr": self.lr}]


def backdrop_masks(count: int, size: tuple[int, int], share: float, generator: torch.Generator) -> torch.Tensor:
    """(count, 1, H, W) masks, True outside one ellipse per image: an object on a flat backdrop. Each ellipse covers
    1 - `share` of the image where it fits inside (aspect ratio 1:2 to 2:1, centred in the middle half, so
    clipped ellipses leave slightly more backdrop)."""
    height, width = size
    u = torch.rand(count, 3, generator=generator)  # its third column is unused; drawn as the round-14 images were
    ratio = 2 ** (2 * u[:, 0] - 1)  # height / width radius
    area = (1 - share) * height * width / math.pi
    ry, rx = (area * ratio).sqrt(), (area / ratio).sqrt()
    cy, cx = (0.25 + 0.5 * u[:, 1]) * height, (0.25 + 0.5 * torch.rand(count, generator=generator)) * width
    ys = torch.arange(height, dtype=torch.float32).view(1, -1, 1) + 0.5
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, -1) + 0.5
    dy, dx = (ys - cy.view(-1, 1, 1)) / ry.view(-1, 1, 1), (xs - cx.view(-1, 1, 1)) / rx.view(-1, 1, 1)
    return (dy.pow(2) + dx.pow(2) > 1).unsqueeze(1)


class NetworkImages(nn.Module):
    """`count` images of `shape` (C, H, W) made by a generator network from one latent each (GENIE); both learned.
    The network trains in train mode, so its last BatchNorm gives every batch zero mean and unit variance per
    channel, the normalized input statistics."""

    def __init__(self, count: int, shape: tuple[int, ...], spec: ImageNetwork, lr: float, seed: int) -> None:
        super().__init__()
        channels, height, width = shape
        grid = (-(-height // 4), -(-width // 4))
        half = (-(-height // 2), -(-width // 2))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.latents = nn.Parameter(torch.randn(count, spec.latent_dim))
            self.net = nn.Sequential(
                nn.Linear(spec.latent_dim, spec.width * grid[0] * grid[1]), nn.Unflatten(1, (spec.width, *grid)),
                nn.BatchNorm2d(spec.width), nn.Upsample(size=half),
                nn.Conv2d(spec.width, spec.width // 2, 3, padding=1), nn.BatchNorm2d(spec.width // 2),
                nn.LeakyReLU(0.2), nn.Upsample(size=(height, width)),
                nn.Conv2d(spec.width // 2, channels, 3, padding=1), nn.Tanh(), nn.BatchNorm2d(channels, affine=False),
            )  # fmt: skip
        self.lr, self.lr_latent = lr, spec.lr_latent

    def forward(self) -> torch.Tensor:
        return self.net(self.latents)

    def project(self) -> None:
        """Nothing to project: the network's last BatchNorm sets the images' statistics."""

    def param_groups(self) -> list[dict]:
        weights = {"params": list(self.net.parameters()), "lr": self.lr}
        return [weights, {"params": [self.latents], "lr": self.lr_latent}]


def distill_images(
    model: nn.Module, images: torch.Tensor, chunk: int, inversion: Inversion | None = None, seed: int = 0,
    pixel_range: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:  # fmt: skip
    """Optimize `images` (the start, e.g. N(0, 1) noise in the normalized input space), `chunk` images at a time
    (each chunk is one batch whose statistics are matched), as `inversion` says (default: ZeroQ's BN statistics,
    200 steps). Image i's target class (class term) is i modulo the number of classes: every class alike. `seed`
    seeds the random shifts and flips. `pixel_range` (lowest, highest value per channel; `pixel_range()`): where
    `inversion.clip` keeps the images."""
    inv = inversion or Inversion()
    if inv.clip and pixel_range is None:
        raise ValueError("Inversion.clip keeps the images inside a pixel range: pass pixel_range")
    if inv.backdrop and inv.coarse:
        raise ValueError("Inversion.backdrop keeps one mask per image: leave coarse at 0")
    bounds = pixel_range if inv.clip else None
    masks = None
    if inv.backdrop:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + 1)
        masks = backdrop_masks(len(images), tuple(images.shape[-2:]), inv.backdrop, gen)
    coarse_steps = round(inv.steps * inv.coarse)
    if coarse_steps:  # nearest-neighbour subsampling keeps the start's per-pixel distribution
        small = F.interpolate(images, scale_factor=0.5, mode="nearest")
        small = _distilled(model, _pixel_chunks(small, chunk, inv.lr, bounds), replace(inv, steps=coarse_steps), seed)
        images = F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)
    fine = replace(inv, steps=inv.steps - coarse_steps)
    return _distilled(model, _pixel_chunks(images, chunk, inv.lr, bounds, masks), fine, seed)


def pixel_range(normalization: dict[str, list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(lowest, highest) value per channel that [0, 1] pixels take under `normalization` ({"mean", "std"})."""
    mean, std = (torch.tensor(normalization[k], dtype=torch.float32) for k in ("mean", "std"))
    return -mean / std, (1 - mean) / std


def _pixel_chunks(
    images: torch.Tensor, chunk: int, lr: float, bounds: tuple[torch.Tensor, torch.Tensor] | None,
    masks: torch.Tensor | None = None,
) -> list[PixelImages]:  # fmt: skip
    return [PixelImages(images[s : s + chunk], lr, bounds, None if masks is None else masks[s : s + chunk])
            for s in range(0, len(images), chunk)]  # fmt: skip


def network_images(
    model: nn.Module, count: int, shape: tuple[int, ...], chunk: int, network: ImageNetwork,
    inversion: Inversion | None = None, seed: int = 0, device: torch.device | str = "cpu",
) -> torch.Tensor:  # fmt: skip
    """`count` images of `shape` made by a generator network per `chunk` (GENIE), trained as `inversion` says (its
    `lr` for the network's weights) from latents and weights drawn with `seed`."""
    inv = inversion or Inversion()
    # Channels-last: the convolutions' native layout on CPU, as for the network being distilled.
    parts = [NetworkImages(min(chunk, count - s), shape, network, inv.lr, seed * 1_000_003 + s)
             .to(device=device, memory_format=torch.channels_last) for s in range(0, count, chunk)]  # fmt: skip
    return _distilled(model, parts, inv, seed)


def _distilled(model: nn.Module, sources: list[nn.Module], inv: Inversion, seed: int) -> torch.Tensor:
    """Each source's images optimized on their own (one batch whose statistics are matched), in order."""
    probe = sources[0]().detach()  # one forward for the images' layout and device
    # Channels-last: the convolutions' native layout on CPU (round3_tuning.md §6 times the step).
    layout = torch.channels_last if probe.ndim == 4 else torch.contiguous_format
    net = copy.deepcopy(model).eval().requires_grad_(False).to(device=probe.device, memory_format=layout)
    out, first = [], 0
    with torch.enable_grad(), _Swing(net, inv.swing) as swing:  # callers may hold no_grad; the images need gradients
        for source in sources:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + first)
            swing.generator = gen
            out.append(_distill_chunk(net, source, inv, gen, first_index=first, layout=layout))
            first += len(out[-1])
    result = torch.cat(out).contiguous()
    if not torch.isfinite(result).all():
        raise FloatingPointError("distillation diverged (non-finite images); lower generator.lr")
    return result


class _Swing(_PreHooks):
    """While active (`shift` > 0), every strided convolution of `net` sees its input shifted by a random offset of
    up to `shift` pixels per axis, reflected at the border (GENIE's swing convolution), drawn from `generator`."""

    def __init__(self, net: nn.Module, shift: int) -> None:
        self.modules = [m for m in net.modules() if isinstance(m, nn.Conv2d) and max(m.stride) > 1] if shift else []
        self.shift, self.generator = shift, torch.Generator()

    def _hook(self, conv: nn.Module, args: tuple) -> tuple:
        x, s = args[0], self.shift
        dy, dx = (int(v) for v in torch.randint(0, 2 * s + 1, (2,), generator=self.generator))
        padded = F.pad(x, [s, s, s, s], mode="reflect")
        return (padded[..., dy : dy + x.shape[-2], dx : dx + x.shape[-1]],)


def _augmented(x: torch.Tensor, inv: Inversion, gen: torch.Generator) -> torch.Tensor:
    if inv.jitter:
        dy, dx = (int(v) for v in torch.randint(-inv.jitter, inv.jitter + 1, (2,), generator=gen))
        x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    if inv.flip and bool(torch.rand((), generator=gen) < 0.5):
        x = x.flip(-1)
    return x


def _distill_chunk(
    net: nn.Module, source: nn.Module, inv: Inversion, gen: torch.Generator, first_index: int,
    layout: torch.memory_format,
) -> torch.Tensor:  # fmt: skip
    opt = torch.optim.Adam(source.param_groups())
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, inv.steps))
    dtype = AUTOCAST[inv.precision]
    targets = None
    for _ in range(inv.steps):
        opt.zero_grad()
        x = source().contiguous(memory_format=layout)
        with (
            BNStatistics(net, inv.first_bn_weight, inv.bn_distance, inv.bn_slack, inv.image_spread) as stats,
            torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None),
        ):
            logits = net(_augmented(x, inv, gen)).float()
        loss = stats.loss
        if inv.class_weight:
            if targets is None:
                targets = (torch.arange(len(x), device=x.device) + first_index) % logits.shape[1]
            loss = loss + inv.class_weight * F.cross_entropy(logits, targets)
        if inv.tv_weight:
            loss = loss + inv.tv_weight * _total_variation(x)
        if inv.l2_weight:
            loss = loss + inv.l2_weight * x.pow(2).mean()
        loss.backward()
        opt.step()
        source.project()
        sched.step()
    with torch.no_grad():
        return source().detach()
