"""Declarative bounds for dataclass config fields, checked in `__post_init__`.

A config dataclass declares `wbits: int = bounded(8, 2, 8)`; building it with a bad value fails with a one-line
UserError naming the field and what is allowed, whether it came from Hydra or from Python.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from lwcompress.errors import UserError


def bounded(
    default: Any, lo: float | None = None, hi: float | None = None, optional: bool = False, before: Any = None
) -> Any:
    """A numeric field that must lie in [lo, hi] (None when `optional`); `before`: see `changed_default`."""
    metadata = {"range": (lo, hi), "optional": optional} | ({"before": before} if before is not None else {})
    return dataclasses.field(default=default, metadata=metadata)


def changed_default(default: Any, before: Any) -> Any:
    """A field whose default became `default` after runs were made with it at `before` (or without it): `defaults`
    gives `before`, so a run of an earlier version is matched as the run it was, not as today's default."""
    return dataclasses.field(default=default, metadata={"before": before})


def choice(default: Any, *options: Any, optional: bool = False, before: Any = None) -> Any:
    """A field whose value must be one of `options` (None when `optional`); `before`: see `changed_default`."""
    metadata = {"choices": options, "optional": optional} | ({"before": before} if before is not None else {})
    return dataclasses.field(default=default, metadata=metadata)


def allowed(metadata: Mapping[str, Any]) -> str | None:
    """What a field's bounds allow, in words ("one of a, b" / "a number in 2..8"); None if unbounded."""
    if "choices" in metadata:
        return "one of " + ", ".join(str(o) for o in metadata["choices"])
    if "range" in metadata:
        lo, hi = metadata["range"]
        if lo is not None and hi is not None:
            return f"a number in {lo}..{hi}"
        return f"a number >= {lo}" if lo is not None else f"a number <= {hi}"
    return None


def _violates(value: Any, metadata: Mapping[str, Any]) -> bool:
    if value is None and metadata.get("optional"):
        return False
    if "choices" in metadata:
        return value not in metadata["choices"]
    if "range" in metadata:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return True
        lo, hi = metadata["range"]
        return (lo is not None and value < lo) or (hi is not None and value > hi)
    return False


def check(obj: Any, prefix: str = "") -> None:
    """Raise UserError for the first field of dataclass `obj` that violates its declared bounds."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if _violates(value, f.metadata):
            raise UserError(f"{prefix}{f.name}={value!r}: must be {allowed(f.metadata)}")


def allowed_for(schema: type, key: str) -> str | None:
    """What the dataclass `schema` allows for a dotted key such as "compressor.wbits" (read from the field
    declarations: nothing is built, so a job schema whose defaults alone do not validate can answer too)."""
    cls: Any = schema
    metadata: Mapping[str, Any] = {}
    for part in key.split("."):
        if not dataclasses.is_dataclass(cls):
            return None
        by_name = {f.name: f for f in dataclasses.fields(cls)}
        if part not in by_name:
            return None
        f = by_name[part]
        metadata = f.metadata
        cls = f.default_factory if f.default_factory is not dataclasses.MISSING else None
    return allowed(metadata)


def defaults(schema: type) -> dict[str, Any]:
    """The default of every field of the dataclass `schema` that has one (a nested dataclass as a dict): what a
    setting that did not exist when a run was made had been, since options are added at their old behaviour; a
    field whose default changed later gives the value it had before (metadata "before": `changed_default`)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(schema):
        if "before" in f.metadata:
            value = f.metadata["before"]
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue
        out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return out


def same_but_added(old: Mapping[str, Any], new: Mapping[str, Any], default: Mapping[str, Any]) -> bool:
    """Whether the settings `new` are `old`'s, but for keys `old` lacks where `new` holds `default`'s value (nested
    mappings alike): a run made before an option existed is the same run as one at the option's default."""
    if old.keys() - new.keys():
        return False
    for key, value in new.items():
        if key not in old:
            if key not in default or default[key] != value:
                return False
        elif isinstance(value, Mapping) and isinstance(old[key], Mapping):
            inner = default.get(key)
            if not same_but_added(old[key], value, inner if isinstance(inner, Mapping) else {}):
                return False
        elif old[key] != value:
            return False
    return True
