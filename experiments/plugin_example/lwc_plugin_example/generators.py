"""`generator=pink_noise`: noise images with the 1/f^exponent power spectrum of natural images, propagated through
the FP network with every BatchNorm normalizing by the batch's own statistics (as the built-in `propagated`).

The whole contract of an image generator: subclass ImageGenerator, declare a config dataclass extending
GeneratorConfig with the generator's own fields, and implement `make` (cfg.num_images images of the model's input
shape). Everything else (capturing layer inputs, sequential runs, caching, the guard) comes from the base class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lwcompress.fields import bounded
from lwcompress.generate import GenerationContext, GeneratorConfig, ImageGenerator, layer_stream


@dataclass
class PinkNoiseConfig(GeneratorConfig):
    """`exponent`: the power spectrum falls as 1/f^exponent (0: white noise, 2: natural images' average)."""

    name: str = "pink_noise"
    exponent: float = bounded(2.0, 0.0, 4.0)  # checked with the shared fields (GeneratorConfig.__post_init__)


class PinkNoise(ImageGenerator):
    """1/f^exponent noise images, each scaled to zero mean and unit variance per channel."""

    config = PinkNoiseConfig
    batch_stat_bn = True
    kind = "pink_noise"

    def key(self, model: nn.Module) -> tuple:
        return *super().key(model), self.cfg.exponent

    def make(self, model: nn.Module, ctx: GenerationContext) -> torch.Tensor:
        n, (c, h, w) = self.cfg.num_images, ctx.input_shape
        white = torch.randn((n, c, h, w), generator=layer_stream(self.cfg.seed, 1 << 20))
        fy, fx = torch.fft.fftfreq(h).view(-1, 1), torch.fft.rfftfreq(w).view(1, -1)
        gain = (fy**2 + fx**2).clamp_min(1.0 / (h * w)) ** (-self.cfg.exponent / 4)  # amplitude: power^(1/2)
        images = torch.fft.irfft2(torch.fft.rfft2(white) * gain, s=(h, w))
        images = images - images.mean(dim=(2, 3), keepdim=True)
        return images / images.std(dim=(2, 3), keepdim=True).clamp_min(1e-8)
