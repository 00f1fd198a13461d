"""Compressor settings as a plain dataclass (usable from Python and as a Hydra structured config)."""

from __future__ import annotations

from dataclasses import dataclass

from lwcompress.fields import bounded, check, choice


@dataclass
class QuantConfig:
    """Uniform quantization: weights per output channel, activations (layer inputs) per tensor.

    `abits=None` leaves activations in float (weight-only quantization). The first layer's input (the
    image) and the last layer (the classifier) get their own widths, as is usual in the literature;
    None means "same as the rest".
    Activation ranges are set data-free from BatchNorm statistics: each BN output is taken to lie in
    beta +- k * |gamma| per channel (k = `act_sigmas`; None: k = min(4, 1 + bits / 2), chosen on the
    validation split: fewer levels want a tighter clip, see experiments/results/act_range.md), and that
    interval is pushed through the elementwise path (ReLU, residual adds, pooling) to the layer's input.
    `act_range=mse` then clips each interval for the layer's input bit width by the squared quantization error
    of samples of that same BN-Gaussian model (measured worse than the sigma rule: the real tails are heavier).

    name: "rtn" rounds to nearest and stops; "quant" starts there and then trains every layer on layer-wise
    data: its rounding ("adaround": learned up/down per weight; "ste": latent weights through a
    straight-through estimator), optionally its weight scales and input scale, and its bias.
    """

    name: str = choice("rtn", "rtn", "quant")
    wbits: int = bounded(8, 2, 8)
    abits: int | None = bounded(8, 2, 8, optional=True)
    symmetric: bool = False
    scale: str = choice("minmax", "minmax", "mse")
    first_layer_wbits: int | None = bounded(8, 2, 8, optional=True)
    first_layer_abits: int | None = bounded(8, 2, 8, optional=True)
    last_layer_wbits: int | None = bounded(8, 2, 8, optional=True)
    last_layer_abits: int | None = bounded(8, 2, 8, optional=True)
    act_sigmas: float | None = bounded(None, 0.5, 100.0, optional=True)
    act_range: str = choice("sigmas", "sigmas", "mse")
    rounding: str = choice("adaround", "adaround", "ste")
    learn_weight_scale: bool = True
    learn_input_scale: bool = False

    def __post_init__(self) -> None:
        check(self)

    @property
    def learned(self) -> bool:
        """Whether layer-wise runs follow the round-to-nearest start."""
        return self.name != "rtn"

    def sigmas_for(self, abits: int) -> float:
        """The BN-statistics range half-width, in sigmas, of a layer input quantized to `abits` bits."""
        return self.act_sigmas if self.act_sigmas is not None else min(4.0, 1.0 + abits / 2)

    def bits_for(self, is_first: bool, is_last: bool) -> tuple[int, int | None]:
        """(weight bits, input bits) of one layer under the first/last-layer policy."""
        wbits, abits = self.wbits, self.abits
        if is_first:
            wbits = self.first_layer_wbits or wbits
            abits = abits if self.first_layer_abits is None else self.first_layer_abits
        if is_last:
            wbits = self.last_layer_wbits or wbits
            abits = abits if self.last_layer_abits is None else self.last_layer_abits
        # abits=None means weight-only quantization: no layer input is quantized, not even the first.
        return wbits, None if self.abits is None else abits
