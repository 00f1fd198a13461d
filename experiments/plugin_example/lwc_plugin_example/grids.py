"""`compressor.scale=percentile`: a weight grid that spans each output channel's central `coverage` of weights
(by magnitude around the channel's median) instead of its [min, max], so a few outliers no longer stretch it.

The whole contract of a weight grid: subclass WeightGrid and give each channel's (scale, zero point) in `params`;
the closed-form compressor, the learned roundings, GPTQ, packing and the ONNX export then use it like the built-ins.
"""

from __future__ import annotations

import torch

from lwcompress.compress.grids import WeightGrid
from lwcompress.compress.quantizer import affine_params


class Percentile(WeightGrid):
    """Each channel's [q, 1 - q] quantiles of its weights (q = (1 - coverage) / 2), widened to include zero."""

    coverage = 0.999

    def params(self, flat: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
        q = (1 - self.coverage) / 2
        lo, hi = torch.quantile(flat, q, dim=1), torch.quantile(flat, 1 - q, dim=1)
        return affine_params(lo, hi, bits, symmetric)
