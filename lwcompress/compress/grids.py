"""Weight grids by name (`compressor.scale`): how the closed-form compressor places each output channel's grid.

minmax  the grid spans the channel's [min, max]
mse     the range shrunk by the factor in (0.2, 1] that minimizes the channel's squared rounding + clipping error
        (a grid search, as in many PTQ tools)

A grid is a `WeightGrid` class (docs/extending.md); outside ones come in by import path
(`compressor.scale=my_pkg.grids.MyGrid`) or the `lwcompress.plugins` entry points, like generators and roundings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from lwcompress.compress.quantizer import affine_params, fake_quant, qrange
from lwcompress.registry import Registry


class WeightGrid(ABC):
    """Places each output channel's uniform grid: `params` gives per-channel (scale, zero point) for `bits`-bit
    codes (`symmetric`: zero point 0, codes in qrange(bits, True)). Learned roundings and GPTQ then choose codes
    on it; layer runs may also learn its scale."""

    @abstractmethod
    def params(self, flat: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero point), each of shape (C,), for the weights `flat` (C, fan-in) of one layer."""


WEIGHT_GRIDS: Registry[type[WeightGrid]] = Registry("weight grid", base=WeightGrid)


@WEIGHT_GRIDS.register("minmax")
class MinMax(WeightGrid):
    """Each channel's [min, max] (widened to include zero)."""

    def params(self, flat: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return affine_params(flat.min(1).values, flat.max(1).values, bits, symmetric)


@WEIGHT_GRIDS.register("mse")
class MSE(WeightGrid):
    """The [min, max] range scaled by the factor among `steps` in [0.2, 1] with the least squared error."""

    steps = 100

    def params(self, flat: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = flat.min(1).values, flat.max(1).values
        qmin, qmax = qrange(bits, symmetric)
        best_err = torch.full_like(lo, float("inf"))
        scale, zp = affine_params(lo, hi, bits, symmetric)
        for ratio in torch.linspace(1.0, 0.2, self.steps).tolist():
            s, z = affine_params(lo * ratio, hi * ratio, bits, symmetric)
            err = (fake_quant(flat, s[:, None], z[:, None], qmin, qmax) - flat).pow(2).sum(1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            scale, zp = torch.where(better, s, scale), torch.where(better, z, zp)
        return scale, zp


def weight_params(
    w: torch.Tensor, bits: int, symmetric: bool, method: str = "minmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel (scale, zero point) of the grid `method` names, shaped to broadcast against `w`."""
    scale, zp = WEIGHT_GRIDS.get(method)().params(w.detach().flatten(1), bits, symmetric)
    view = (-1, *([1] * (w.ndim - 1)))
    return scale.view(view), zp.view(view)
