"""Compressor settings as a plain dataclass (usable from Python and as a Hydra structured config)."""

from __future__ import annotations

from dataclasses import dataclass

from lwcompress.compress.prune import parse_pattern
from lwcompress.errors import UserError
from lwcompress.fields import bounded, check, choice

# Each closed-form compressor and the layer-wise one that starts from it and then trains every layer.
LEARNED = {"rtn": "quant", "prune_magnitude": "prune"}


@dataclass
class CompressorConfig:
    """Uniform quantization (weights per output channel, activations (layer inputs) per tensor) and/or magnitude
    pruning; one layer wrapper does both, pruning first (the grid then covers the surviving weights).

    `wbits=None` leaves weights in float, `abits=None` activations (weight-only quantization). The first layer's
    input (the image) and the last layer (the classifier) get their own widths, as is usual in the literature;
    None means "same as the rest".
    Activation ranges are set data-free from BatchNorm statistics: each BN output is taken to lie in
    beta +- k * |gamma| per channel (k = `act_sigmas`; None: k = min(4, 1 + bits / 2), chosen on the
    validation split: fewer levels want a tighter clip, see experiments/results/act_range.md), and that
    interval is pushed through the elementwise path (ReLU, residual adds, pooling) to the layer's input.
    `act_range=mse` then clips each interval for the layer's input bit width by the squared quantization error
    of samples of that same BN-Gaussian model (measured worse than the sigma rule: the real tails are heavier).
    `act_range=calibrated` takes each layer input's min/max over the generator's images instead (ZeroQ with
    generator=distilled; image-fed layers keep the pixel range).

    Pruning: `sparsity` is the fraction of each layer's weights set to exact zeros by magnitude, allocated
    "uniform" (every layer alike) or "global" (one threshold over all layers); `pattern="2:4"` (any N:M) keeps N of
    every M input-channel weights instead, which fixes the sparsity at 1 - N/M. First/last-layer sparsities
    override the rest (None: the same), like the bit widths.

    name: "rtn" / "prune_magnitude" round to nearest / prune by magnitude and stop; "quant" / "prune" start there
    and then train every layer on layer-wise data: its rounding ("adaround": learned up/down per weight; "ste":
    latent weights through a straight-through estimator), optionally its weight scales and input scale, and its
    bias; float weights (pruning alone) are retrained directly, the mask held fixed. rounding="gptq" trains
    nothing: each layer is solved in closed form from its inputs' second moments (layerwise/gptq.py). The two
    families differ only in their defaults (conf/compressor): `compressor=prune compressor.wbits=4` prunes,
    quantizes and trains both.
    """

    name: str = choice("quant", "rtn", "quant", "prune_magnitude", "prune")  # the CLI's default too
    wbits: int | None = bounded(8, 2, 8, optional=True)
    abits: int | None = bounded(8, 2, 8, optional=True)
    symmetric: bool = False
    scale: str = choice("minmax", "minmax", "mse")
    first_layer_wbits: int | None = bounded(8, 2, 8, optional=True)
    first_layer_abits: int | None = bounded(8, 2, 8, optional=True)
    last_layer_wbits: int | None = bounded(8, 2, 8, optional=True)
    last_layer_abits: int | None = bounded(8, 2, 8, optional=True)
    act_sigmas: float | None = bounded(None, 0.5, 100.0, optional=True)
    act_range: str = choice("sigmas", "sigmas", "mse", "calibrated")
    rounding: str = choice("adaround", "adaround", "ste", "gptq")
    learn_weight_scale: bool = True
    learn_input_scale: bool = False
    sparsity: float = bounded(0.0, 0.0, 0.99)
    allocation: str = choice("uniform", "uniform", "global")
    pattern: str = "unstructured"
    first_layer_sparsity: float | None = bounded(None, 0.0, 0.99, optional=True)
    last_layer_sparsity: float | None = bounded(None, 0.0, 0.99, optional=True)

    def __post_init__(self) -> None:
        check(self)
        try:
            n_m = parse_pattern(self.pattern)
        except ValueError as e:
            raise UserError(f"pattern={self.pattern!r}: {e}") from None
        if n_m is not None and abs(self.sparsity - (1 - n_m[0] / n_m[1])) > 1e-9:
            raise UserError(
                f"pattern={self.pattern} fixes the sparsity at {1 - n_m[0] / n_m[1]:g}; set sparsity to that, "
                f"not {self.sparsity:g}"
            )
        if self.wbits is None and self.abits is None and not self.prunes:
            raise UserError(f"name={self.name}: nothing to compress (wbits, abits and sparsity all off)")

    @property
    def learned(self) -> bool:
        """Whether layer-wise runs follow the closed-form start."""
        return self.name in LEARNED.values()

    @property
    def closed_form(self) -> str:
        """The compressor a learned one starts from (itself if it is closed-form)."""
        return {v: k for k, v in LEARNED.items()}.get(self.name, self.name)

    @property
    def prunes(self) -> bool:
        return self.sparsity > 0 or any(s for s in (self.first_layer_sparsity, self.last_layer_sparsity))

    def sparsity_for(self, is_first: bool, is_last: bool) -> float:
        """Target fraction of zeros of one layer under the first/last-layer policy."""
        if is_first and self.first_layer_sparsity is not None:
            return self.first_layer_sparsity
        if is_last and self.last_layer_sparsity is not None:
            return self.last_layer_sparsity
        return self.sparsity

    def label(self) -> str:
        """Short description for tables: "W4A4", "W32A32 70% uniform", "W4A4 2:4"."""
        bits = f"W{self.wbits or 32}A{self.abits or 32}"
        if self.pattern != "unstructured":
            return f"{bits} {self.pattern}"
        return f"{bits} {self.sparsity:.0%} {self.allocation}" if self.prunes else bits

    def sigmas_for(self, abits: int) -> float:
        """The BN-statistics range half-width, in sigmas, of a layer input quantized to `abits` bits."""
        return self.act_sigmas if self.act_sigmas is not None else min(4.0, 1.0 + abits / 2)

    def bits_for(self, is_first: bool, is_last: bool) -> tuple[int | None, int | None]:
        """(weight bits, input bits) of one layer under the first/last-layer policy (None: float)."""
        wbits, abits = self.wbits, self.abits
        if is_first:
            wbits = self.first_layer_wbits or wbits
            abits = abits if self.first_layer_abits is None else self.first_layer_abits
        if is_last:
            wbits = self.last_layer_wbits or wbits
            abits = abits if self.last_layer_abits is None else self.last_layer_abits
        # wbits=None means float weights everywhere (pruning alone, activation-only quantization).
        # abits=None means weight-only quantization: no layer input is quantized, not even the first.
        return None if self.wbits is None else wbits, None if self.abits is None else abits
