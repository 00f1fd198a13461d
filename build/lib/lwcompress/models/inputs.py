"""What a model expects of its input: the normalization it was trained with and its image size, from what the user
declares (`model.normalization`, `model.input_size`), what its checkpoint records, and what the data set uses."""

from __future__ import annotations

import logging
from typing import Any

from lwcompress.errors import UserError

log = logging.getLogger("lwcompress")


def declared_normalization(value: Any) -> dict[str, list[float]] | str | None:
    """`model.normalization` checked: None, "from_checkpoint", or {"mean": [...], "std": [...]} of equal length
    with positive stds."""
    if value is None or value == "from_checkpoint":
        return value
    if not (hasattr(value, "keys") and set(value.keys()) == {"mean", "std"}):
        raise UserError(f"normalization={value}: give {{mean: [...], std: [...]}} (one value per channel) or "
                        "from_checkpoint")  # fmt: skip
    try:
        mean, std = [float(v) for v in value["mean"]], [float(v) for v in value["std"]]
    except (TypeError, ValueError):
        raise UserError(f"normalization={dict(value)}: mean and std must be lists of numbers") from None
    if not mean or len(mean) != len(std) or min(std) <= 0:
        raise UserError(f"normalization={dict(value)}: mean and std need one value per channel, std > 0")
    return {"mean": mean, "std": std}


def _differ(a: dict[str, list[float]], b: dict[str, list[float]]) -> bool:
    """Different values, or different lengths (checked first: zip then never sees unequal lists)."""
    keys = ("mean", "std")
    return any(len(a[k]) != len(b[k]) or any(abs(x - y) > 1e-6 for x, y in zip(a[k], b[k], strict=True)) for k in keys)


def resolve_normalization(
    declared: dict[str, list[float]] | str | None, meta: dict[str, Any], data: dict[str, list[float]],
    data_name: str, channels: int, weights: str | None,
) -> dict[str, list[float]]:  # fmt: skip
    """The normalization the model's inputs must have. Precedence: declared > recorded in the checkpoint > the data
    set's (with a warning when the model has weights: they may have been trained with other values). A declared
    value that contradicts the checkpoint, from_checkpoint without a record, or a channel count that does not fit
    is a UserError."""
    recorded = meta.get("normalization")
    if isinstance(declared, dict):
        if recorded and _differ(declared, recorded):
            raise UserError(f"model.normalization={declared} contradicts checkpoint {weights}, which records "
                            f"{recorded}")  # fmt: skip
        chosen = declared
    elif declared == "from_checkpoint":
        if not recorded:
            raise UserError(f"model.normalization=from_checkpoint, but checkpoint {weights} records none (a plain "
                            "state_dict); declare model.normalization={mean: [...], std: [...]}")  # fmt: skip
        chosen = recorded
    elif recorded:
        chosen = recorded
    else:
        chosen = data
        if weights:
            log.warning(f"model.normalization not declared and checkpoint {weights} records none: using {data_name}'s "
                        f"mean={data['mean']} std={data['std']}; declare model.normalization if the model was "
                        "trained with other values")  # fmt: skip
    if len(chosen["mean"]) not in (1, channels):
        raise UserError(f"normalization {chosen} has {len(chosen['mean'])} values per key; the data has {channels} "
                        "channel(s)")  # fmt: skip
    if len(chosen["mean"]) == 1 and channels > 1:
        chosen = {k: v * channels for k, v in chosen.items()}
    return {"mean": list(chosen["mean"]), "std": list(chosen["std"])}


def check_input_size(declared: int | None, meta: dict[str, Any], image_size: int, data_name: str) -> None:
    """The model's declared or recorded input side must be what the data delivers."""
    recorded = meta.get("input_shape")
    if declared is not None and recorded and recorded[-1] != declared:
        raise UserError(f"model.input_size={declared} contradicts the checkpoint, which records input shape {recorded}")
    expected = declared if declared is not None else (recorded[-1] if recorded else None)
    if expected is not None and expected != image_size:
        source = "model.input_size" if declared is not None else "the checkpoint's input shape"
        raise UserError(f"{source} is {expected} but {data_name} gives {image_size}x{image_size} images (set "
                        f"data.image_size={expected} where the data set allows it)")  # fmt: skip
