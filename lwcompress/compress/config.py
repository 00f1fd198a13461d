"""Compressor settings as a plain dataclass (usable from Python and as a Hydra structured config)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from lwcompress.compress.grids import WEIGHT_GRIDS
from lwcompress.compress.prune import parse_pattern
from lwcompress.errors import UserError
from lwcompress.fields import bounded, check, choice

# Each closed-form compressor and the layer-wise one that starts from it and then trains every layer.
LEARNED = {"rtn": "quant", "prune_magnitude": "prune"}
# What a per-layer rule may set.
LAYER_KEYS = ("wbits", "abits", "sparsity")


@dataclass(frozen=True)
class LayerSetting:
    """One layer's compression after every rule: weight bits, input bits (None: float), fraction pruned."""

    wbits: int | None
    abits: int | None
    sparsity: float


def matches(pattern: str, name: str) -> bool:
    """Whether a layer-name pattern covers `name`: fnmatch ("layer3.*", "*.shortcut.0"), or "re:<regex>" matched
    against the whole name."""
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return fnmatch.fnmatchcase(name, pattern)


def _check_rule(pattern: str, values: Any) -> None:
    where = f"layers[{pattern!r}]"
    if not pattern or pattern == "re:":
        raise UserError("layers: an empty layer-name pattern")
    if pattern.startswith("re:"):
        try:
            re.compile(pattern[3:])
        except re.error as e:
            raise UserError(f"{where}: not a regular expression ({e})") from None
    if not isinstance(values, dict) or not values:
        raise UserError(f"{where}={values!r}: must set some of {', '.join(LAYER_KEYS)}, e.g. {{wbits: 4}}")
    for key, value in values.items():
        if key not in LAYER_KEYS:
            raise UserError(f"{where}.{key}: unknown; a layer rule sets {', '.join(LAYER_KEYS)}")
        if key == "sparsity":
            ok = not isinstance(value, bool) and isinstance(value, int | float) and 0.0 <= value <= 0.99
            allowed = "a number in 0.0..0.99"
        else:
            ok = value is None or (not isinstance(value, bool) and isinstance(value, int) and 2 <= value <= 8)
            allowed = "an integer in 2..8, or null (float)"
        if not ok:
            raise UserError(f"{where}.{key}={value!r}: must be {allowed}")


@dataclass
class BitBudget:
    """Per-layer bit widths chosen under a size budget (`compressor.budget`). Active when `wbits` (average weight
    bits over all compressible weights), `bytes` (their total bytes) or `abits` (average layer-input bits, weighted
    by each input's elements per image) is set. Layers whose bits a first/last-layer key or a `layers` rule fixes
    keep them (and count against the budget); every other layer gets one of the candidate widths.

    allocation: "sensitivity" measures, without data, each layer's output error on the generator's synthetic
    images when that layer alone is rounded to each candidate width (`measure`: relative MSE or KL of the logits,
    on `images` images), then picks the widths with the least total error that fit the budget (a multiple-choice
    knapsack); "uniform" gives every free layer the widest candidate that fits.
    """

    wbits: float | None = bounded(None, 1.0, 32.0, optional=True)
    bytes: int | None = bounded(None, 1, optional=True)
    abits: float | None = bounded(None, 1.0, 32.0, optional=True)
    allocation: str = choice("sensitivity", "uniform", "sensitivity")
    candidate_wbits: list[int] = field(default_factory=lambda: [2, 3, 4, 5, 6, 8])
    candidate_abits: list[int] = field(default_factory=lambda: [4, 5, 6, 8])
    measure: str = choice("output_mse", "output_mse", "output_kl")
    images: int = bounded(256, 1)

    def __post_init__(self) -> None:
        check(self)
        if self.wbits is not None and self.bytes is not None:
            raise UserError("budget: set wbits (average bits) or bytes (total), not both")
        for key in ("candidate_wbits", "candidate_abits"):
            widths = list(getattr(self, key))
            if not widths or any(isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= 8 for b in widths):
                raise UserError(f"budget.{key}={widths}: must be a non-empty list of integers in 2..8")
            setattr(self, key, sorted(set(widths)))

    @property
    def active(self) -> bool:
        return self.wbits is not None or self.bytes is not None or self.abits is not None


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
    interval is pushed through the elementwise path (ReLU, residual adds, pooling) to the layer's input; a residual
    add's terms sum their bounds (`act_sums=bounds`) or combine in quadrature as independent Gaussians
    (`act_sums=quadrature`, narrower; generate/ranges.py).
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
    nothing: each layer is solved in closed form from its inputs' second moments (layerwise/gptq.py);
    rounding="auto" does that for the layers with 2- and 3-bit weights (`auto_gptq_wbits`), where it matched or beat
    AdaRound at a fraction of the time (block units holding such a layer run layer by layer), and AdaRound for the
    rest. `rounding` names a class in layerwise.rounding.ROUNDINGS (or an installed plug-in's, or any class by its
    import path: docs/extending.md), checked when the job is built. The two families differ only in their defaults
    (conf/compressor): `compressor=prune compressor.wbits=4` prunes, quantizes and trains both.
    """

    name: str = choice("quant", "rtn", "quant", "prune_magnitude", "prune")  # the CLI's default too
    wbits: int | None = bounded(8, 2, 8, optional=True)
    abits: int | None = bounded(8, 2, 8, optional=True)
    symmetric: bool = False
    scale: str = "minmax"  # the weight grid: minmax, mse, a plug-in's name or a class's import path (compress/grids.py)
    first_layer_wbits: int | None = bounded(8, 2, 8, optional=True)
    first_layer_abits: int | None = bounded(8, 2, 8, optional=True)
    last_layer_wbits: int | None = bounded(8, 2, 8, optional=True)
    last_layer_abits: int | None = bounded(8, 2, 8, optional=True)
    act_sigmas: float | None = bounded(None, 0.5, 100.0, optional=True)
    act_range: str = choice("sigmas", "sigmas", "mse", "calibrated")
    act_sums: str = choice("bounds", "bounds", "quadrature")
    rounding: str = "auto"  # auto, adaround, ste, gptq, a plug-in's name or a class's import path (see above)
    # rounding=auto: layers of at most this many weight bits are GPTQ's (3 since round 17, round17_tuning.md)
    auto_gptq_wbits: int = bounded(3, 2, 8, before=2)
    learn_weight_scale: bool = True
    learn_input_scale: bool = True
    sparsity: float = bounded(0.0, 0.0, 0.99)
    allocation: str = choice("uniform", "uniform", "global")
    pattern: str = "unstructured"
    first_layer_sparsity: float | None = bounded(None, 0.0, 0.99, optional=True)
    last_layer_sparsity: float | None = bounded(None, 0.0, 0.99, optional=True)
    # Per-layer rules by qualified layer name (as layers.csv lists them), applied in order after the first/last-layer
    # keys, a later match overriding an earlier one key by key: {pattern: {wbits, abits, sparsity}}, or a list
    # [{match: pattern, wbits: ...}, ...] (on the command line Hydra cannot parse every pattern as a dict key).
    layers: Any = None
    budget: BitBudget = field(default_factory=BitBudget)
    # Each quantized layer's bias on its input-step x weight-step grid: what onnxruntime's integer kernels add
    # (`lwcompress-export --bias int32`), so the exported model computes what the run evaluated.
    int32_bias: bool = False
    # Every 8-bit tensor between layers quantized once, residual adds' terms included (`compress/integer_graph.py`):
    # with int32_bias, what onnxruntime's integer kernels compute when every layer and add is one.
    integer_graph: bool = False

    def __post_init__(self) -> None:
        check(self)
        try:
            WEIGHT_GRIDS.get(self.scale)
        except UserError as e:
            raise UserError(f"scale={self.scale}: {e}") from None
        for pattern, values in self.rules:
            _check_rule(pattern, values)
        if isinstance(self.budget, dict):  # from Python: CompressorConfig(budget={"wbits": 3})
            self.budget = BitBudget(**self.budget)
        if (self.budget.wbits or self.budget.bytes) and self.wbits is None:
            raise UserError("budget.wbits/bytes allocate weight bits: set compressor.wbits (the widths' default)")
        if self.budget.abits and self.abits is None:
            raise UserError("budget.abits allocates input bits: set compressor.abits (the widths' default)")
        try:
            n_m = parse_pattern(self.pattern)
        except ValueError as e:
            raise UserError(f"pattern={self.pattern!r}: {e}") from None
        if n_m is not None and abs(self.sparsity - (1 - n_m[0] / n_m[1])) > 1e-9:
            raise UserError(
                f"pattern={self.pattern} fixes the sparsity at {1 - n_m[0] / n_m[1]:g}; set sparsity to that, "
                f"not {self.sparsity:g}"
            )
        if self.integer_graph and not self.int32_bias:
            raise UserError("integer_graph=true simulates integer kernels, which add int32 biases: set int32_bias=true")
        ruled = any(v.get("wbits") or v.get("abits") for _, v in self.rules)
        if self.wbits is None and self.abits is None and not self.prunes and not ruled:
            raise UserError(f"name={self.name}: nothing to compress (wbits, abits and sparsity all off)")

    @property
    def rules(self) -> list[tuple[str, dict[str, Any]]]:
        """`layers` as (pattern, settings) pairs in order, from either form."""
        if self.layers is None:
            return []
        if isinstance(self.layers, dict):
            return [(str(k), v) for k, v in self.layers.items()]
        if isinstance(self.layers, list) and all(isinstance(r, dict) and "match" in r for r in self.layers):
            return [(str(r["match"]), {k: v for k, v in r.items() if k != "match"}) for r in self.layers]
        raise UserError(f"layers={self.layers!r}: must be {{pattern: {{wbits: 4}}}} or [{{match: pattern, wbits: 4}}]")

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
        rules = [v.get("sparsity") for _, v in self.rules]
        return self.sparsity > 0 or any(s for s in (self.first_layer_sparsity, self.last_layer_sparsity, *rules))

    def pinned(self, name: str, is_first: bool, is_last: bool) -> tuple[bool, bool]:
        """Whether a layer's (weight bits, input bits) are fixed by a first/last-layer key or a `layers` rule, and
        so not the budget's to choose."""
        rules = [v for p, v in self.rules if matches(p, name)]
        w = any("wbits" in v for v in rules) or (is_first and self.first_layer_wbits is not None) or (
            is_last and self.last_layer_wbits is not None)  # fmt: skip
        a = any("abits" in v for v in rules) or (is_first and self.first_layer_abits is not None) or (
            is_last and self.last_layer_abits is not None)  # fmt: skip
        return w, a

    def setting_for(self, name: str, is_first: bool, is_last: bool) -> LayerSetting:
        """One layer's bits and sparsity: the global values, then the first/last-layer keys, then each matching
        `layers` rule in order. wbits=None (abits=None) globally means float weights (inputs) wherever no rule
        names the layer: the first/last-layer keys do not switch quantization on."""
        wbits, abits, sparsity = self.wbits, self.abits, self.sparsity
        if is_first:
            wbits = self.first_layer_wbits or wbits
            abits = abits if self.first_layer_abits is None else self.first_layer_abits
            sparsity = sparsity if self.first_layer_sparsity is None else self.first_layer_sparsity
        if is_last:
            wbits = self.last_layer_wbits or wbits
            abits = abits if self.last_layer_abits is None else self.last_layer_abits
            sparsity = sparsity if self.last_layer_sparsity is None else self.last_layer_sparsity
        wbits, abits = None if self.wbits is None else wbits, None if self.abits is None else abits
        for pattern, values in self.rules:
            if matches(pattern, name):
                wbits, abits = values.get("wbits", wbits), values.get("abits", abits)
                sparsity = values.get("sparsity", sparsity)
        return LayerSetting(wbits, abits, float(sparsity))

    def label(self) -> str:
        """Short description for tables: "W4A4", "W32A32 70% uniform", "W4A4 2:4", "W3avgA8 sensitivity" (a
        budget), "... mixed" (per-layer rules)."""
        b = self.budget
        w = f"{b.wbits:g}avg" if b.wbits else f"{b.bytes}B" if b.bytes else str(self.wbits or 32)
        a = f"{b.abits:g}avg" if b.abits else str(self.abits or 32)
        bits = f"W{w}A{a}" + (f" {b.allocation}" if b.active else "")
        if self.pattern != "unstructured":
            bits = f"{bits} {self.pattern}"
        elif self.prunes:
            bits = f"{bits} {self.sparsity:.0%} {self.allocation}"
        return bits + (" mixed" if self.rules else "")

    def sigmas_for(self, abits: int) -> float:
        """The BN-statistics range half-width, in sigmas, of a layer input quantized to `abits` bits."""
        return self.act_sigmas if self.act_sigmas is not None else min(4.0, 1.0 + abits / 2)
