"""Per-layer bit widths under a size budget (`compressor.budget`): measure each free layer's sensitivity to each
candidate width without data, then choose the widths (`solve.choose`). The chosen widths become exact-name
`layers` rules of the compressor config, so the rest of the pipeline (and `load_compressed`) sees a plain
mixed-precision config."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from lwcompress.allocate.solve import choose
from lwcompress.compress.config import BitBudget, CompressorConfig
from lwcompress.compress.modules import CompressedLayer
from lwcompress.errors import UserError
from lwcompress.generate.capture import Stepwise
from lwcompress.graph import LayerInfo
from lwcompress.layerwise.guard import domain_twin, output_error

# rounded(config) -> (the deployed model with every layer wrapped and rounded under config, FP folded references)
Rounded = Callable[[CompressorConfig], tuple[nn.Module, dict[str, nn.Module]]]


@dataclass
class Allocation:
    """The widths chosen for the free layers, what the budget allowed and cost, and the measured sensitivities
    ({"wbits"/"abits": {layer: {width: error}}}; empty for allocation=uniform)."""

    wbits: dict[str, int] = field(default_factory=dict)
    abits: dict[str, int] = field(default_factory=dict)
    sensitivity: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    wall_s: float = 0.0

    def resolved(self, config: CompressorConfig) -> CompressorConfig:
        """`config` with the chosen widths as exact-name rules after its own, and no budget left to allocate."""
        names = dict.fromkeys([*self.wbits, *self.abits])
        chosen = [{"match": _exact(n), **({"wbits": self.wbits[n]} if n in self.wbits else {}),
                   **({"abits": self.abits[n]} if n in self.abits else {})} for n in names]  # fmt: skip
        own = [{"match": p, **v} for p, v in config.rules]
        return dataclasses.replace(config, layers=own + chosen or None, budget=BitBudget())


def _exact(name: str) -> str:
    """An fnmatch pattern that matches `name` only ([ is the one special character qualified names may hold)."""
    return name.replace("[", "[[]")


def allocate(
    config: CompressorConfig, layers: list[LayerInfo], params: dict[str, int], rounded: Rounded,
    measured_in: Callable[[], tuple[nn.Module, torch.Tensor]], float_inputs: set[str], chunk: int = 64,
) -> Allocation:  # fmt: skip
    """Choose the free layers' widths under `config.budget`: weights by parameter count, inputs by elements per
    image (`LayerInfo.input_shape`). Sensitivities are measured in the folded FP domain network on its images,
    which `measured_in()` gives (called only where an allocation measures: "uniform" makes no images);
    `float_inputs` (image-fed layers in a synthetic domain) keep their configured input bits."""
    start = time.perf_counter()
    b, out = config.budget, Allocation()
    settings = {i.name: config.setting_for(i.name, i.is_first, i.is_last) for i in layers}
    if b.wbits is not None or b.bytes is not None:
        free = [i.name for i in layers if not config.pinned(i.name, i.is_first, i.is_last)[0]]
        fixed = sum(params[n] * (settings[n].wbits or 32) for n in params if n not in free)
        total = b.wbits * sum(params.values()) if b.wbits is not None else 8.0 * b.bytes
        out.wbits = _choose(free, {n: params[n] for n in free}, total - fixed, b.candidate_wbits, b, "weight",
                            lambda ws: _errors(free, rounded, {w: _only_weights(config, w) for w in ws},
                                               measured_in, float_inputs, chunk, b.measure), out, "wbits")  # fmt: skip
    if b.abits is not None:
        elems = {i.name: _numel(i) for i in layers if settings[i.name].abits is not None}
        free = [n for n in elems if n not in float_inputs and not config.pinned(n, *_ends(layers, n))[1]]
        fixed = sum(elems[n] * settings[n].abits for n in elems if n not in free)
        out.abits = _choose(free, {n: elems[n] for n in free}, b.abits * sum(elems.values()) - fixed,
                            b.candidate_abits, b, "input",
                            lambda ws: _errors(free, rounded, {a: _only_inputs(config, a) for a in ws},
                                               measured_in, float_inputs, chunk, b.measure), out, "abits")  # fmt: skip
    out.wall_s = time.perf_counter() - start
    return out


def _choose(
    free: list[str], size: dict[str, int], budget: float, widths: list[int], b: BitBudget, what: str,
    measure: Callable[[list[int]], dict[int, dict[str, float]]], out: Allocation, key: str,
) -> dict[str, int]:  # fmt: skip
    """Widths for `free` layers of `size` (params or input elements) within `budget` (bits)."""
    if not free:
        return {}
    need = min(widths) * sum(size.values())
    if budget < need:
        have = budget / sum(size.values())
        raise UserError(f"compressor.budget leaves the free layers {have:.3g} {what} bits on average, below the "
                        f"smallest candidate ({min(widths)}); raise the budget or add smaller widths")  # fmt: skip
    if b.allocation == "uniform":
        width = max(w for w in widths if w * sum(size.values()) <= budget)
        return dict.fromkeys(free, width)
    errors = measure(widths)
    out.sensitivity[key] = {n: {w: errors[w][n] for w in widths} for n in free}
    picks = choose([[size[n] * w for w in widths] for n in free], [[errors[w][n] for w in widths] for n in free],
                   budget)  # fmt: skip
    return {n: widths[k] for n, k in zip(free, picks, strict=True)}


def _only_weights(config: CompressorConfig, wbits: int) -> CompressorConfig:
    """Every layer's weights at `wbits`, inputs float: each layer's weight sensitivity alone."""
    return dataclasses.replace(config, wbits=wbits, abits=None, first_layer_wbits=None, last_layer_wbits=None,
                               layers=None, budget=BitBudget())  # fmt: skip


def _only_inputs(config: CompressorConfig, abits: int) -> CompressorConfig:
    """Every layer's input at `abits`, weights float (pruning kept): each layer's input sensitivity alone."""
    return dataclasses.replace(config, wbits=None, abits=abits, first_layer_abits=None, last_layer_abits=None,
                               layers=None, budget=BitBudget())  # fmt: skip


@torch.no_grad()
def _errors(
    names: list[str], rounded: Rounded, configs: dict[int, CompressorConfig],
    measured_in: Callable[[], tuple[nn.Module, torch.Tensor]], float_inputs: set[str], chunk: int, measure: str,
) -> dict[int, dict[str, float]]:  # fmt: skip
    """Per width and layer: the domain network's output error (the network and its images from `measured_in`) with
    that layer alone compressed under the width's config. One pass walks the layers in order; each trial runs only
    the rest of the network from that layer (`Stepwise.output_with`), so the trials share their prefix: about half
    the cost of a full pass each."""
    domain, images = measured_in()
    models = {w: rounded(c) for w, c in configs.items()}
    steps = Stepwise(domain, images, chunk)
    target = steps.output_with({})
    errors: dict[int, dict[str, float]] = {w: {} for w in configs}
    for name in names:  # in execution order (graph analysis order)
        steps.input_of(name)
        for w, (model, references) in models.items():
            q = model.get_submodule(name)
            assert isinstance(q, CompressedLayer)
            twin = domain_twin(q, domain.get_submodule(name), references[name], name in float_inputs)
            errors[w][name] = output_error(steps.output_with({name: twin}), target, measure)
    return errors


def _numel(info: LayerInfo) -> int:
    shape = info.input_shape or (1,)
    return int(torch.tensor(shape).prod())


def _ends(layers: list[LayerInfo], name: str) -> tuple[bool, bool]:
    info = next(i for i in layers if i.name == name)
    return info.is_first, info.is_last
