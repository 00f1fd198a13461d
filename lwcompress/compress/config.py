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
    beta +- act_sigmas * |gamma| per channel, and that interval is pushed through the elementwise path
    (ReLU, residual adds, pooling) to the layer's input.

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
    act_sigmas: float = bounded(6.0, 0.5, 100.0)
    rounding: str = choice("adaround", "adaround", "ste")
    learn_weight_scale: bool = True
    learn_input_scale: bool = False

    def __post_init__(self) -> None:
        check(self)

    @property
    def learned(self) -> bool:
        """Whether layer-wise runs follow the round-to-nearest start."""
        return self.name != "rtn"

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
