"""Per-input-channel views of conv/linear weights, groups included.

Input channel i of a grouped conv is read only by the output channels of its group: in a (O, I/g, kh, kw)
weight those are rows [g_i * O/g, (g_i + 1) * O/g) at column i mod I/g. Linear weights are the groups=1 case.
"""

from __future__ import annotations

import torch


def _grouped(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """(groups, outputs per group, inputs per group, kernel positions) view of a conv or linear weight."""
    return weight.reshape(groups, weight.shape[0] // groups, weight.shape[1], -1)


def by_input_channel(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """(input channels, n): row i holds every weight that reads input channel i."""
    return _grouped(weight, groups).transpose(1, 2).reshape(groups * weight.shape[1], -1)


def scale_input_channels(weight: torch.Tensor, groups: int, scale: torch.Tensor) -> torch.Tensor:
    """A copy of `weight` with every weight that reads input channel i multiplied by scale[i]."""
    return (_grouped(weight, groups) * scale.view(groups, 1, -1, 1)).reshape(weight.shape)


def contract_input_channels(weight: torch.Tensor, groups: int, value: torch.Tensor) -> torch.Tensor:
    """(output channels,): sum of w[o, i, k] * value[i] over input channels and kernel positions, i.e. the
    layer's output (bias aside) on an input that holds value[i] everywhere in channel i, away from borders."""
    summed = _grouped(weight, groups).sum(-1)
    return (summed * value.view(groups, 1, -1)).sum(-1).reshape(-1)
