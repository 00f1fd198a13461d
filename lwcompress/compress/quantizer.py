"""Uniform fake quantization with a straight-through estimator (STE).

Weights: one (scale, zero point) per output channel. Symmetric grids are restricted to
[-(2^(b-1) - 1), 2^(b-1) - 1] (2^b - 1 levels, zero exactly representable, no zero point); asymmetric grids use
all 2^b codes [0, 2^b - 1] with an integer zero point. Activations: one affine range per tensor; a range that
starts at 0 (after ReLU / ReLU6) is an unsigned grid.
"""

from __future__ import annotations

import torch


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return (x.round() - x).detach() + x


def qrange(bits: int, symmetric: bool) -> tuple[int, int]:
    """Integer code range of a grid."""
    if symmetric:
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def fake_quant(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """Quantize-dequantize. Gradients pass straight through inside the grid and are zero where x clips."""
    if not torch.is_grad_enabled() and scale.numel() == 1:
        # Evaluation: the values of torch's fused fake_quantize_per_tensor_affine (x times the float reciprocal of the
        # step), in place after one new tensor: that kernel measured 4-5x slower on CPU, as slow as resnet20's convs.
        return x.mul(scale.reciprocal()).round_().add_(zero_point).clamp_(qmin, qmax).sub_(zero_point).mul_(scale)
    q = torch.clamp(round_ste(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def quantize_codes(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int
) -> torch.Tensor:
    """Integer codes of `x` (what a deployed model stores)."""
    return torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)


def affine_params(lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero point) of the grid that covers [lo, hi] (elementwise over channels)."""
    qmin, qmax = qrange(bits, symmetric)
    eps = torch.finfo(torch.float32).tiny
    if symmetric:
        scale = torch.maximum(hi.abs(), lo.abs()).clamp_min(eps) / qmax
        return scale, torch.zeros_like(scale)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)  # zero must be on the grid (padding, ReLU zeros)
    scale = ((hi - lo) / (qmax - qmin)).clamp_min(eps)
    zero_point = torch.clamp(torch.round(qmin - lo / scale), qmin, qmax)
    return scale, zero_point
