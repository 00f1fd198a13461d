"""The layer modules compressors produce: a conv/linear whose weight and input are fake-quantized."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lwcompress.compress.quantizer import affine_params, fake_quant, qrange, quantize_codes, weight_params


class QuantLayer(nn.Module):
    """Wraps a Conv2d or Linear. Weight: per-channel grid; input: per-tensor affine grid on [lo, hi].

    The float weight stays the trainable latent (what layer-wise runs optimize); `codes()` gives what a
    deployed model stores. `abits=None` leaves the input in float.
    """

    def __init__(
        self,
        layer: nn.Conv2d | nn.Linear,
        wbits: int,
        symmetric: bool,
        scale_method: str = "minmax",
        abits: int | None = None,
        input_range: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(layer, nn.Conv2d | nn.Linear):
            raise TypeError(f"QuantLayer wraps Conv2d or Linear, not {type(layer).__name__}")
        self.layer = layer
        self.wbits, self.symmetric, self.abits = wbits, symmetric, abits
        scale, zero_point = weight_params(layer.weight, wbits, symmetric, scale_method)
        self.register_buffer("w_scale", scale)
        self.register_buffer("w_zero_point", zero_point)
        self.input_range = input_range
        if abits is not None:
            if input_range is None:
                raise ValueError("input quantization needs an input range")
            a_scale, a_zero = affine_params(torch.tensor(input_range[0]), torch.tensor(input_range[1]), abits, False)
            self.register_buffer("a_scale", a_scale)
            self.register_buffer("a_zero_point", a_zero)

    def quantized_weight(self) -> torch.Tensor:
        return fake_quant(self.layer.weight, self.w_scale, self.w_zero_point, *qrange(self.wbits, self.symmetric))

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.abits is None:
            return x
        return fake_quant(x, self.a_scale, self.a_zero_point, *qrange(self.abits, False))

    def codes(self) -> torch.Tensor:
        """Integer weight codes, int8 for symmetric grids and uint8 for asymmetric ones."""
        q = quantize_codes(
            self.layer.weight.detach(), self.w_scale, self.w_zero_point, *qrange(self.wbits, self.symmetric)
        )
        return q.to(torch.int8 if self.symmetric else torch.uint8)

    def load_codes(self, codes: torch.Tensor) -> None:
        """Set the latent weight to the dequantized codes (inverse of `codes`)."""
        with torch.no_grad():
            self.layer.weight.copy_((codes.float() - self.w_zero_point) * self.w_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quantize_input(x)
        w = self.quantized_weight()
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, w, self.layer.bias)
        return F.linear(x, w, self.layer.bias)

    def extra_repr(self) -> str:
        a = f"A{self.abits} on [{self.input_range[0]:.3g}, {self.input_range[1]:.3g}]" if self.abits else "A-float"
        return f"W{self.wbits} {'symmetric' if self.symmetric else 'asymmetric'}, {a}"
