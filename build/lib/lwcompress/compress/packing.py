"""A compressed model's state at its real size: k-bit weight codes packed k bits each, masks 1 bit each, pruned
weights not stored at all, and every other tensor in one float32 vector, so that `compressed.pt` is as large as
`size_bits` says plus a small header (torch.save spends ~270 bytes on each tensor it writes)."""

from __future__ import annotations

from typing import Any

import torch

from lwcompress.compress.modules import CompressedLayer
from lwcompress.compress.quantizer import qrange


def pack_bits(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Non-negative integers below 2**bits, `bits` each, little-endian within a byte stream (uint8)."""
    planes = (values.flatten().long()[:, None] >> torch.arange(bits)) & 1
    stream = planes.flatten()
    stream = torch.cat([stream, stream.new_zeros(-len(stream) % 8)])
    return (stream.view(-1, 8) << torch.arange(8)).sum(1).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """The `count` integers `pack_bits` stored (int64)."""
    stream = ((packed.long()[:, None] >> torch.arange(8)) & 1).flatten()[: count * bits]
    return (stream.view(count, bits) << torch.arange(bits)).sum(1)


def pack_state(state: dict[str, torch.Tensor], layers: dict[str, CompressedLayer]) -> tuple[dict, dict[str, Any]]:
    """(tensors, layout) for a checkpoint: `state` (a compressed model's state_dict) with each compressed layer's
    weight as packed codes of its kept entries (float weights: the kept floats) and its mask as bits."""
    state = dict(state)
    codes, masks, floats, layout = [], [], [], {"codes": [], "masks": [], "floats": []}
    for name, q in layers.items():
        weight = state.pop(f"{name}.layer.weight")
        mask = state.pop(f"{name}.mask", None)
        kept = mask.flatten() if mask is not None else torch.ones(weight.numel(), dtype=torch.bool)
        if mask is not None:
            masks.append(pack_bits(kept, 1))
            layout["masks"].append([name, list(mask.shape)])  # layout: plain lists, which safe loading reads
        if q.wbits is None:  # float weights: the kept values among the floats
            state[f"{name}.layer.weight_kept"] = weight.flatten()[kept]
            continue
        qmin = qrange(q.wbits, q.symmetric)[0]
        kept_codes = q.codes().flatten().long()[kept] - qmin
        codes.append(pack_bits(kept_codes, q.wbits))
        layout["codes"].append([name, q.wbits, qmin, int(kept.sum())])
    for key in [k for k, t in state.items() if t.is_floating_point()]:
        t = state.pop(key)
        floats.append(t.float().flatten())
        layout["floats"].append([key, list(t.shape)])
    tensors = {**state, "packed.codes": _cat(codes, torch.uint8), "packed.masks": _cat(masks, torch.uint8),
               "packed.floats": _cat(floats, torch.float32)}  # fmt: skip
    return tensors, layout


def unpack_state(tensors: dict[str, torch.Tensor], layout: dict[str, Any],
                 layers: dict[str, CompressedLayer]) -> dict[str, torch.Tensor]:  # fmt: skip
    """The inverse of `pack_state` onto `layers` (the rebuilt structure, for weight shapes): a state dict in which
    each quantized layer has `<name>.weight_codes` (pruned entries at their zero point) instead of its weight."""
    state = {k: v for k, v in tensors.items() if not k.startswith("packed.")}
    floats = iter(_split(tensors["packed.floats"], [torch.Size(s).numel() for _, s in layout["floats"]]))
    for key, shape in layout["floats"]:
        state[key] = next(floats).view(shape).clone()
    masks = _split(tensors["packed.masks"], [_bytes(torch.Size(shape).numel(), 1) for _, shape in layout["masks"]])
    for (name, shape), packed in zip(layout["masks"], masks, strict=True):
        state[f"{name}.mask"] = unpack_bits(packed, 1, torch.Size(shape).numel()).bool().view(shape)
    for name, q in layers.items():
        if q.wbits is None:  # pruned float weights are zeros
            weight = torch.zeros_like(q.layer.weight)
            weight.view(-1)[_kept(state, name)] = state.pop(f"{name}.layer.weight_kept")
            state[f"{name}.layer.weight"] = weight
    codes = _split(tensors["packed.codes"], [_bytes(count, bits) for _, bits, _, count in layout["codes"]])
    for (name, bits, qmin, count), packed in zip(layout["codes"], codes, strict=True):
        shape = layers[name].layer.weight.shape
        full = state[f"{name}.w_zero_point"].expand(shape).long().clone()  # pruned codes: the zero point
        full.view(-1)[_kept(state, name)] = unpack_bits(packed, bits, count) + qmin
        state[f"{name}.weight_codes"] = full
    return state


def _kept(state: dict[str, torch.Tensor], name: str) -> torch.Tensor | slice:
    mask = state.get(f"{name}.mask")
    return mask.flatten() if mask is not None else slice(None)


def _bytes(count: int, bits: int) -> int:
    """Bytes `pack_bits` writes for `count` values of `bits` bits."""
    return -(-count * bits // 8)


def _split(blob: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    return list(torch.split(blob, [int(n) for n in sizes])) if sizes else []


def _cat(parts: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    return torch.cat(parts) if parts else torch.zeros(0, dtype=dtype)
