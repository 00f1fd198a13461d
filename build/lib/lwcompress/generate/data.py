"""What a generator returns: the layer-wise data of one model, made on first use.

The pipeline asks it for what each stage needs (images for calibrated ranges, per-layer inputs for independent
runs, a network to run in for sequential ones, held-out real inputs for diagnostics), so no stage needs to know
which generator it is: what differs between generators are properties of this object.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from lwcompress.errors import UserError
from lwcompress.generate.capture import capture_inputs
from lwcompress.generate.generators import (
    GenerationContext,
    Generator,
    GeneratorConfig,
    able,
    checked_inputs,
    domain_gaps,
    generator,
)
from lwcompress.generate.inputs import LayerInputs
from lwcompress.graph import LayerInfo

DIAGNOSTIC_IMAGES = 64
T = TypeVar("T")


@dataclass
class LayerData:
    """The layer-wise data `cfg` makes for `model` (unfolded, analyzed into `layers`); generation time in `ctx`."""

    model: nn.Module
    layers: list[LayerInfo]
    cfg: GeneratorConfig
    ctx: GenerationContext

    @property
    def generator(self) -> Generator:
        return generator(self.cfg)

    @property
    def pixels(self) -> bool:
        """Whether its images are real pixels: only then do image-fed layers train, with their input quantized (a
        data-free stand-in for images trains them for the wrong input, and clipping it to the pixel grid injects
        an error real images never see)."""
        return self.generator.pixels

    def images(self) -> tuple[torch.Tensor, bool]:
        """(images, whether BatchNorms normalize by their batch statistics on them); UserError for generators
        that make none."""
        return self.generator.images(self.model, self.ctx)

    def inputs(self) -> dict[str, LayerInputs]:
        """Every layer's input batches for independent runs (inputs and targets from the FP network)."""
        inputs = self._timed(self.generator.inputs, self.model, self.layers, self.ctx)
        return checked_inputs(inputs, self.layers, self.cfg)

    def domain(self) -> tuple[nn.Module, torch.Tensor]:
        """The BN network and images whose forward gives the layer inputs, for sequential runs."""
        return self._timed(self.generator.domain, self.model, self.ctx)

    def gaps(self) -> dict[str, float]:
        """Each layer's domain gap (generators.domain_gaps): how far its generated inputs are from its training
        inputs, seen through its weights (layerwise.max_gap); UserError for generators that make no images."""
        if not self.generator.makes_images:
            raise UserError(f"layerwise.max_gap compares each layer's output statistics on the generator's images "
                            f"with its training ones, and generator={self.cfg.name} makes no images: use "
                            f"{', '.join(able('makes_images'))}")  # fmt: skip
        return self._timed(domain_gaps, self.model, self.layers, self.cfg, self.ctx)

    @property
    def float_inputs(self) -> set[str]:
        """Layers whose input stays unquantized in this data's domain: the image-fed ones, unless the images are
        real pixels (noise or distilled images lie far outside the pixel grid)."""
        if self.pixels:
            return set()
        return {i.name for i in self.layers if any(s.kind == "input" for s in i.sources)}

    @property
    def has_domain(self) -> bool:
        """Whether a single network forward gives its layer inputs (sequential runs and the guard need one)."""
        return self.generator.has_domain

    def guard_images(self, n: int) -> torch.Tensor:
        """`n` domain images for the network-level guard (Generator.held_out_images)."""
        return self.generator.held_out_images(self.model, self.ctx, n)

    def held_out(self) -> dict[str, torch.Tensor]:
        """Real layer inputs of images the runs never train on (diagnostics only); {} without real images."""
        real = self.ctx.real_images
        if real is None:
            return {}
        start = self.cfg.num_images if self.generator.needs_real else 0  # past the ones it trains on
        held = real[start : start + DIAGNOSTIC_IMAGES]
        if len(held) == 0:
            return {}
        return capture_inputs(self.model, [i.name for i in self.layers], held, False, device=self.ctx.device)

    def _timed(self, fn: Callable[..., T], *args: object) -> T:
        clock, before = time.perf_counter(), self.ctx.wall_s
        out = fn(*args)
        # distillation inside adds its own time to ctx.wall_s; count the rest here
        self.ctx.wall_s = before + (time.perf_counter() - clock)
        return out
