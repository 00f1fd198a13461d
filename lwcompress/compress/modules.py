"""The layer module compressors produce: a conv/linear whose weight is masked (pruned) and/or fake-quantized, and
whose input may be fake-quantized."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lwcompress.compress.grids import weight_params
from lwcompress.compress.quantizer import affine_params, fake_quant, qrange, quantize_codes, round_ste

# AdaRound's rectified sigmoid stretch (Nagel et al. 2020): h(V) reaches exactly 0 and 1.
ZETA, GAMMA = 1.1, -0.1


def rectified_sigmoid(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)


class CompressedLayer(nn.Module):
    """Wraps a Conv2d or Linear. Weight: a fixed pruning mask (pruned weights are exact zeros) and a per-channel
    grid; input: per-tensor affine grid on [lo, hi].

    `w_scale` is the weight's per-channel unit: the grid step, or for float weights (`wbits=None`) the channel's
    RMS, so learning rates and the codes that carry a layer between BN foldings mean the same in both cases.
    As built it is round-to-nearest / magnitude-pruned. `make_trainable` opens it for a layer-wise run: a learned
    rounding (`rounding`, a module built on this layer: layerwise/rounding.py) that owns what of the weight learns
    and gives the weight on the grid meanwhile, the input scale (LSQ-style), the bias. `harden` fixes the result,
    after which `codes()` is what a deployed model stores. `abits=None` leaves the input in float.
    """

    def __init__(
        self,
        layer: nn.Conv2d | nn.Linear,
        wbits: int | None,
        symmetric: bool,
        scale_method: str = "minmax",
        abits: int | None = None,
        input_range: tuple[float, float] | None = None,
        mask: torch.Tensor | None = None,
        int32_bias: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(layer, nn.Conv2d | nn.Linear):
            raise TypeError(f"CompressedLayer wraps Conv2d or Linear, not {type(layer).__name__}")
        self.layer = layer
        self.wbits, self.symmetric, self.abits = wbits, symmetric, abits
        self.register_buffer("mask", None if mask is None else mask.to(torch.bool))
        if self.mask is not None:
            with torch.no_grad():
                layer.weight.mul_(self.mask)
        self.scale_method = scale_method
        scale, zero_point = self._weight_grid()
        self.w_scale = nn.Parameter(scale, requires_grad=False)
        self.register_buffer("w_zero_point", zero_point)
        if abits is not None:
            if input_range is None:
                raise ValueError("input quantization needs an input range")
            lo, hi = (torch.tensor(float(v)) for v in input_range)
            a_scale, a_zero = affine_params(lo, hi, abits, False)
            self.a_scale = nn.Parameter(a_scale, requires_grad=False)
            self.register_buffer("a_zero_point", a_zero)
        self.int32_bias = int32_bias and wbits is not None and abits is not None
        self.rounding: nn.Module | None = None  # the learned rounding, while a layer run learns it
        self.drop_prob = 0.0  # while learning: the fraction of input elements left unquantized (QDrop)

    def _weight_grid(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero point) per output channel for the current weight: its grid, or (RMS, 0) for float weights."""
        w = self.layer.weight.detach()
        if self.wbits is None:
            rms = w.flatten(1).pow(2).mean(1).sqrt()
            scale = torch.where(rms > 0, rms, torch.ones_like(rms)).view(-1, *[1] * (w.ndim - 1))
            return scale, torch.zeros_like(scale)
        return weight_params(w, self.wbits, self.symmetric, self.scale_method)

    @torch.no_grad()
    def fit_grid(self) -> None:
        """Refit the weight grid to the current weight (after a pruned layer's survivors were refit)."""
        scale, zero_point = self._weight_grid()
        self.w_scale.copy_(scale)
        self.w_zero_point.copy_(zero_point)

    @property
    def input_range(self) -> tuple[float, float] | None:
        """The [lo, hi] the input grid covers (it moves when the input scale is learned); None for float input."""
        if self.abits is None:
            return None
        qmin, qmax = qrange(self.abits, False)
        s, z = float(self.a_scale), float(self.a_zero_point)
        return (qmin - z) * s, (qmax - z) * s

    def make_trainable(
        self, rounding: Callable[[CompressedLayer, bool], nn.Module] | None = None, learn_weight_scale: bool = True,
        learn_input_scale: bool = False, train_bias: bool = True, drop_prob: float = 0.0,
    ) -> None:  # fmt: skip
        """Choose what a layer-wise run may change: `rounding(self, learn_weight_scale)` builds the learned rounding
        (a TrainedRounding class, layerwise/rounding.py; None: the weight stays as it is). Float weights are trained
        directly whatever the rounding; the mask never changes. `drop_prob`: in training mode, each input element
        skips its quantization with this probability (QDrop, Wei et al. 2022: weights that must work with and
        without the activation error end in a flatter spot)."""
        for p in self.parameters():
            p.requires_grad_(False)
        self.drop_prob = drop_prob
        if self.wbits is None:
            self.layer.weight.requires_grad_(True)
        elif rounding is not None:
            self.rounding = rounding(self, learn_weight_scale)
        if self.abits is not None:
            self.a_scale.requires_grad_(learn_input_scale)
        if self.layer.bias is not None:
            self.layer.bias.requires_grad_(train_bias)

    @torch.no_grad()
    def harden(self) -> None:
        """End learning: put the chosen grid values into the latent weight; the layer is round-to-nearest again."""
        self.layer.weight.copy_(self.quantized_weight(hard=True))
        self.rounding = None
        self.drop_prob = 0.0
        for p in self.parameters():
            p.requires_grad_(False)

    def quantized_weight(self, hard: bool = False) -> torch.Tensor:
        """The weight the layer computes with: masked, then on its grid."""
        if self.wbits is None:
            w = self.layer.weight
        elif self.rounding is not None:
            w = self.rounding.weight(self, hard)
        else:
            w = fake_quant(self.layer.weight, self.w_scale, self.w_zero_point, *qrange(self.wbits, self.symmetric))
        # Zero is on every grid, so a pruned weight stays an exact zero after quantization.
        return w if self.mask is None else w * self.mask

    def bias(self) -> torch.Tensor | None:
        """The bias the layer adds: with `int32_bias`, on the input-step x weight-step grid per output channel, as the
        int32 bias of an integer kernel (straight-through while learning); else the float bias."""
        if not self.int32_bias or self.layer.bias is None:
            return self.layer.bias
        step = self.a_scale * self.w_scale.flatten()
        return round_ste(self.layer.bias / step) * step

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.abits is None:
            return x
        return fake_quant(x, self.a_scale, self.a_zero_point, *qrange(self.abits, False))

    @property
    def sparsity(self) -> float:
        """Fraction of the weight pruned by the mask (weights that merely round to zero are not counted)."""
        return 0.0 if self.mask is None else 1.0 - float(self.mask.float().mean())

    def codes(self) -> torch.Tensor:
        """Integer weight codes, int8 for symmetric grids and uint8 for asymmetric ones; float weights in units of
        `w_scale`."""
        if self.rounding is not None:
            raise RuntimeError("harden() the layer before exporting codes")
        if self.wbits is None:
            return self.layer.weight.detach() / self.w_scale
        q = quantize_codes(
            self.layer.weight.detach(), self.w_scale.detach(), self.w_zero_point, *qrange(self.wbits, self.symmetric)
        )
        return q.to(torch.int8 if self.symmetric else torch.uint8)

    def load_codes(self, codes: torch.Tensor) -> None:
        """Set the latent weight to the dequantized codes (inverse of `codes`)."""
        with torch.no_grad():
            self.layer.weight.copy_((codes.float() - self.w_zero_point) * self.w_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.drop_prob > 0:
            x = torch.where(torch.rand_like(x) < self.drop_prob, x, self.quantize_input(x))
        else:
            x = self.quantize_input(x)
        w, b = self.quantized_weight(), self.bias()
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, w, b)
        return F.linear(x, w, b)

    def extra_repr(self) -> str:
        a = f"A{self.abits} on [{self.input_range[0]:.3g}, {self.input_range[1]:.3g}]" if self.abits else "A-float"
        w = f"W{self.wbits} {'symmetric' if self.symmetric else 'asymmetric'}" if self.wbits else "W-float"
        pruned = f", {self.sparsity:.1%} zeros" if self.mask is not None else ""
        return f"{w}{pruned}, {a}"
