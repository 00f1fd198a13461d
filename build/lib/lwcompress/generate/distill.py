"""Distilled images (ZeroQ / DeepInversion): inputs optimized so that every BatchNorm sees batch statistics equal
to its running (training) statistics. The high-compute generative baseline: each step is a forward and backward
pass of the whole network, where the layer-wise generators run no convolution at all (bn_gaussian) or one forward.

Beyond ZeroQ's BN-statistics loss, DeepInversion's image priors are options (`Inversion`): a class term (each image
pushed towards a target class by cross-entropy on the network's own logits), a heavier weight on the first
BatchNorm (the one that sees the image's low-level statistics), random shifts and flips every step (the network's
translation and mirror invariance: features that survive them are image-like, not pixel noise), total variation
and an L2 prior.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@dataclass(frozen=True)
class Inversion:
    """How images are optimized: `steps` Adam steps at `lr` (cosine) per chunk; the priors weighted by
    `tv_weight`, `l2_weight`, `class_weight` (0: ZeroQ's BN statistics only); the first BatchNorm's term times
    `first_bn_weight`; each step sees the images shifted by up to `jitter` pixels (circularly) and, if `flip`,
    mirrored with probability 1/2."""

    steps: int = 200
    lr: float = 0.25
    tv_weight: float = 0.0
    l2_weight: float = 0.0
    class_weight: float = 0.0
    first_bn_weight: float = 1.0
    jitter: int = 0
    flip: bool = False


class _ShiftedMoments(torch.autograd.Function):
    """Per channel (dim 1) of x - shift: the mean and the mean square, with a one-pass elementwise backward. A
    distillation step spent a third of its time in Tensor.var and another sixth in the backward of mean/pow chains;
    the shift (the running mean) keeps E[d^2] - E[d]^2 free of cancellation."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dims = [d for d in range(x.ndim) if d != 1]
        shifted = x - shift.view([-1 if d == 1 else 1 for d in range(x.ndim)])
        ctx.save_for_backward(shifted)
        ctx.count = x.numel() // x.shape[1]
        return shifted.sum(dims) / ctx.count, (shifted * shifted).sum(dims) / ctx.count

    @staticmethod
    def backward(ctx: object, grad_offset: torch.Tensor, grad_second: torch.Tensor) -> tuple[torch.Tensor, None]:
        (shifted,) = ctx.saved_tensors
        shape = [-1 if d == 1 else 1 for d in range(shifted.ndim)]
        scale, bias = (2 * grad_second / ctx.count).view(shape), (grad_offset / ctx.count).view(shape)
        return torch.addcmul(bias, shifted, scale), None


class BNStatistics:
    """While active, sums over the model's BatchNorms ZeroQ's distance between each BN input's batch statistics
    and the running ones: ||mean_batch - running_mean||_2 + ||std_batch - running_std||_2, per BN, the first BN's
    term times `first_weight`."""

    def __init__(self, model: nn.Module, first_weight: float = 1.0) -> None:
        self.norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        if not self.norms:
            raise ValueError("the model has no BatchNorm with running statistics to match")
        self.weights = {id(bn): first_weight if i == 0 else 1.0 for i, bn in enumerate(self.norms)}
        self.loss: torch.Tensor | None = None
        self.handles = []

    def _hook(self, bn: _BatchNorm, args: tuple) -> None:
        offset, second = _ShiftedMoments.apply(args[0], bn.running_mean)
        var = (second - offset.pow(2)).clamp_min(0)
        term = offset.norm() + ((var + bn.eps).sqrt() - (bn.running_var + bn.eps).sqrt()).norm()
        term = self.weights[id(bn)] * term
        self.loss = term if self.loss is None else self.loss + term

    def __enter__(self) -> BNStatistics:
        self.handles = [bn.register_forward_pre_hook(self._hook) for bn in self.norms]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()


def bn_statistics_loss(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The BN-statistics distance of one batch of `images` through `model` (eval mode: running statistics)."""
    with BNStatistics(model) as stats:
        model.eval()(images)
    return stats.loss


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (DeepInversion's smoothness prior)."""
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


def distill_images(
    model: nn.Module, images: torch.Tensor, chunk: int, inversion: Inversion | None = None, seed: int = 0
) -> torch.Tensor:
    """Optimize `images` (the start, e.g. N(0, 1) noise in the normalized input space), `chunk` images at a time
    (each chunk is one batch whose statistics are matched), as `inversion` says (default: ZeroQ's BN statistics,
    200 steps). Image i's target class (class term) is i modulo the number of classes: every class alike. `seed`
    seeds the random shifts and flips."""
    inv = inversion or Inversion()
    # Channels-last: the convolutions' native layout on CPU (round3_tuning.md §6 times the step).
    layout = torch.channels_last if images.ndim == 4 else torch.contiguous_format
    net = copy.deepcopy(model).eval().requires_grad_(False).to(device=images.device, memory_format=layout)
    out = []
    with torch.enable_grad():  # callers may hold no_grad; the images need gradients
        for start in range(0, len(images), chunk):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + start)
            part = images[start : start + chunk].contiguous(memory_format=layout)
            out.append(_distill_chunk(net, part, inv, gen, first_index=start))
    result = torch.cat(out).contiguous()
    if not torch.isfinite(result).all():
        raise FloatingPointError("distillation diverged (non-finite images); lower generator.lr")
    return result


def _augmented(x: torch.Tensor, inv: Inversion, gen: torch.Generator) -> torch.Tensor:
    if inv.jitter:
        dy, dx = (int(v) for v in torch.randint(-inv.jitter, inv.jitter + 1, (2,), generator=gen))
        x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    if inv.flip and bool(torch.rand((), generator=gen) < 0.5):
        x = x.flip(-1)
    return x


def _distill_chunk(
    net: nn.Module, images: torch.Tensor, inv: Inversion, gen: torch.Generator, first_index: int
) -> torch.Tensor:
    x = images.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=inv.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, inv.steps))
    targets = None
    for _ in range(inv.steps):
        opt.zero_grad()
        with BNStatistics(net, inv.first_bn_weight) as stats:
            logits = net(_augmented(x, inv, gen))
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
        sched.step()
    return x.detach()
