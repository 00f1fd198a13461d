"""Distilled images (ZeroQ / DeepInversion): inputs optimized so that every BatchNorm sees batch statistics equal
to its running (training) statistics. The high-compute generative baseline: each step is a forward and backward
pass of the whole network, where the layer-wise generators run no convolution at all (bn_gaussian) or one forward.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class BNStatistics:
    """While active, sums over the model's BatchNorms ZeroQ's distance between each BN input's batch statistics
    and the running ones: ||mean_batch - running_mean||_2 + ||std_batch - running_std||_2, per BN."""

    def __init__(self, model: nn.Module) -> None:
        self.norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        self.loss: torch.Tensor | None = None
        self.handles = []

    def _hook(self, bn: _BatchNorm, args: tuple) -> None:
        x = args[0]
        dims = [d for d in range(x.ndim) if d != 1]
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        term = (mean - bn.running_mean).norm() + ((var + bn.eps).sqrt() - (bn.running_var + bn.eps).sqrt()).norm()
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
    if stats.loss is None:
        raise ValueError("the model has no BatchNorm with running statistics to match")
    return stats.loss


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (DeepInversion's smoothness prior)."""
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


def distill_images(
    model: nn.Module,
    images: torch.Tensor,
    steps: int,
    lr: float,
    chunk: int,
    tv_weight: float = 0.0,
    l2_weight: float = 0.0,
) -> torch.Tensor:
    """Optimize `images` (the start, e.g. N(0, 1) noise in the normalized input space) with Adam and a cosine
    schedule, `chunk` images at a time (each chunk is one batch whose statistics are matched), to minimize the
    BN-statistics distance plus optional priors: total variation and the images' mean square."""
    net = copy.deepcopy(model).eval().requires_grad_(False).to(images.device)
    out = []
    with torch.enable_grad():  # callers may hold no_grad; the images need gradients
        for start in range(0, len(images), chunk):
            out.append(_distill_chunk(net, images[start : start + chunk], steps, lr, tv_weight, l2_weight))
    result = torch.cat(out)
    if not torch.isfinite(result).all():
        raise FloatingPointError("distillation diverged (non-finite images); lower generator.lr")
    return result


def _distill_chunk(
    net: nn.Module, images: torch.Tensor, steps: int, lr: float, tv_weight: float, l2_weight: float
) -> torch.Tensor:
    x = images.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    for _ in range(steps):
        opt.zero_grad()
        loss = bn_statistics_loss(net, x)
        if tv_weight:
            loss = loss + tv_weight * _total_variation(x)
        if l2_weight:
            loss = loss + l2_weight * x.pow(2).mean()
        loss.backward()
        opt.step()
        sched.step()
    return x.detach()
