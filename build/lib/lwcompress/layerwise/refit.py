"""Closed-form start for pruned layers: the surviving weights that best reproduce the FP layer, by least squares.

With the mask fixed, a pruned conv/linear is linear in its (float) survivors, so the layer-wise problem
(match the FP output on the layer's inputs) has an exact solution per output channel: ridge regression of the
target on the input patches the channel's kept weights see. It costs one Gram matrix per group and one small solve
per output channel, instead of hundreds of optimizer steps that approach it slowly. When the layer is also
quantized, the grid is refit to these weights and the layer run then learns their rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lwcompress.compress.modules import CompressedLayer


def _patches(layer: nn.Conv2d | nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """The layer's input as rows of what one output position sees: (positions, in_features)."""
    if isinstance(layer, nn.Linear):
        return x.reshape(-1, layer.in_features)
    cols = F.unfold(x, layer.kernel_size, layer.dilation, layer.padding, layer.stride)  # (N, C*kh*kw, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


@torch.no_grad()
def refit_survivors(q: CompressedLayer, x: torch.Tensor, target: torch.Tensor, damping: float = 1e-3) -> None:
    """Set the kept (latent float) weights of pruned layer `q` to the least-squares fit of `target` (the FP layer's
    output on the inputs that gave `x`) from `x`; the bias stays. `damping` x the mean diagonal of each Gram block
    keeps the solve well posed when inputs are collinear. A quantized layer then needs `q.fit_grid()`."""
    if q.mask is None:
        raise ValueError("refit_survivors fits pruned layers only")
    layer = q.layer
    weight, mask = layer.weight.flatten(1), q.mask.flatten(1)  # views: (out, in_features per group)
    out = len(weight)
    feats = _patches(layer, x).double()
    y = (target.movedim(1, -1) if target.ndim > 2 else target).reshape(-1, out).double()
    if layer.bias is not None:
        y = y - layer.bias.double()
    groups = getattr(layer, "groups", 1)
    per_in, per_out = weight.shape[1], out // groups
    for g in range(groups):
        f = feats[:, g * per_in : (g + 1) * per_in]
        gram, cross = f.T @ f, f.T @ y[:, g * per_out : (g + 1) * per_out]
        ridge = damping * gram.diagonal().mean().clamp_min(1e-12)
        for j in range(per_out):
            o = g * per_out + j
            keep = mask[o].nonzero().squeeze(1)
            if len(keep) == 0:
                continue
            block = gram[keep][:, keep] + ridge * torch.eye(len(keep), dtype=gram.dtype)
            weight[o, keep] = torch.linalg.solve(block, cross[keep, j]).to(weight.dtype)
