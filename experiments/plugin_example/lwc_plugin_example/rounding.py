"""`compressor.rounding=offset_round`: SignRound's parameterization (Cheng et al. 2023) of a learned rounding.

Each weight gets an offset v in [-0.5, 0.5] grid steps, added before rounding to nearest and learned through a
straight-through estimator; the weight and its grid stay fixed. The whole contract of a learned rounding: subclass
TrainedRounding, build what it learns on the layer in __init__, give the weight on the grid (`weight`) and Adam's
parameter groups (`param_groups`); a `penalty` and settings of its own (a `config` dataclass, filled from
`layerwise.roundings.<name>`) are optional. Block units, QDrop, resume and the rest come with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lwcompress.compress import CompressedLayer
from lwcompress.compress.quantizer import fake_quant, qrange
from lwcompress.fields import bounded
from lwcompress.layerwise import LayerwiseConfig
from lwcompress.layerwise.rounding import RoundingConfig, TrainedRounding


@dataclass
class OffsetRoundConfig(RoundingConfig):
    """`lr_divisor`: the offsets learn at layerwise.lr / lr_divisor (set as
    `+layerwise.roundings.offset_round.lr_divisor=20`)."""

    name: str = "offset_round"
    lr_divisor: float = bounded(10.0, 0.1, 1000.0)


class OffsetRound(TrainedRounding):
    """A learned offset per weight before round-to-nearest (0 at the start: the run starts at round-to-nearest)."""

    config = OffsetRoundConfig

    def __init__(self, q: CompressedLayer, learn_weight_scale: bool, settings: RoundingConfig) -> None:
        super().__init__(q, learn_weight_scale, settings)
        self.offset = nn.Parameter(torch.zeros_like(q.layer.weight))

    def weight(self, q: CompressedLayer, hard: bool) -> torch.Tensor:
        shifted = q.layer.weight.detach() + self.offset.clamp(-0.5, 0.5) * q.w_scale.detach()
        return fake_quant(shifted, q.w_scale.detach(), q.w_zero_point, *qrange(q.wbits, q.symmetric))

    def param_groups(self, q: CompressedLayer, cfg: LayerwiseConfig) -> list[dict]:
        # in grid steps: at the default divisor, ~5 steps to cross half a step
        return [{"params": [self.offset], "lr": cfg.lr / self.settings.lr_divisor}]
