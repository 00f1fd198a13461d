"""`preconditioner=weight_clip`: BN folding, then every conv / linear weight clipped per output channel to its mean
+- `sigmas` standard deviations, so that a few outlying weights no longer stretch a min-max grid (a data-free trick
in the spirit of outlier-channel clipping; it changes the FP function, and the layer runs reproduce the clipped one).

The whole contract of a preconditioner: subclass Preconditioner, declare a config dataclass extending
PreconditionerConfig with its own fields, override the stages it changes (`equalize` before graph analysis, `fold`
for the copy that is quantized, `correct` after rounding); the others keep the base's (no-op, BN folding, no-op).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lwcompress.fields import bounded, check
from lwcompress.precondition import Preconditioner, PreconditionerConfig


@dataclass
class WeightClipConfig(PreconditionerConfig):
    """`sigmas`: each output channel's weights are clipped to their mean +- sigmas * std."""

    name: str = "weight_clip"
    sigmas: float = bounded(3.0, 1.0, 10.0)

    def __post_init__(self) -> None:
        check(self)  # one-line range errors, as the built-ins'


class WeightClip(Preconditioner):
    """Folded BatchNorms, then per-output-channel clipping of the folded weights."""

    config = WeightClipConfig

    def fold(self, model: nn.Module) -> nn.Module:
        folded = super().fold(model)
        with torch.no_grad():
            for m in folded.modules():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    w = m.weight.flatten(1)
                    mean, std = w.mean(1, keepdim=True), w.std(1, keepdim=True)
                    reach = self.cfg.sigmas * std
                    m.weight.copy_(torch.minimum(torch.maximum(w, mean - reach), mean + reach).view_as(m.weight))
        return folded
