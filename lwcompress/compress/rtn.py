"""Round-to-nearest quantization of every layer: no data, no training; the baseline."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lwcompress.compress.config import QuantConfig
from lwcompress.compress.modules import QuantLayer


@dataclass
class LayerRecord:
    """What was done to one layer (a row of layers.csv)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    params: int
    wbits: int
    abits: int | None
    input_lo: float | None
    input_hi: float | None


def quantize_layers(
    model: nn.Module,
    layers: list[tuple[str, str, bool, bool]],
    cfg: QuantConfig,
    ranges: dict[str, tuple[float, float] | None],
) -> list[LayerRecord]:
    """Replace each named layer of `model` in place by a QuantLayer under `cfg`'s bit policy.

    `layers` holds (name, kind, is_first, is_last); a layer whose input range is unknown keeps a float input.
    """
    records = []
    for name, kind, is_first, is_last in layers:
        layer = model.get_submodule(name)
        wbits, abits = cfg.bits_for(is_first, is_last)
        rng = ranges.get(name)
        if rng is None:
            abits = None
        q = QuantLayer(layer, wbits, cfg.symmetric, cfg.scale, abits, rng)
        model.set_submodule(name, q)
        records.append(
            LayerRecord(
                name,
                kind,
                tuple(layer.weight.shape),
                layer.weight.numel(),
                wbits,
                abits,
                rng[0] if rng else None,
                rng[1] if rng else None,
            )
        )
    return records
