"""Per-layer results on disk, written atomically as each bucket finishes: a killed run resumes from them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from lwcompress import io
from lwcompress.errors import UserError
from lwcompress.fields import same_but_added
from lwcompress.layerwise.run import LayerResult


class LayerStore:
    """`<dir>/<layer>.pt` (the layer's state) and `<dir>/<layer>.json` (its metrics), under a fingerprint of
    everything that determines them; results of another configuration are never mixed in. A stamp written before
    a setting existed matches where the fingerprint holds that setting at its value in `defaults` (the same shape
    as the fingerprint): a new option at its default does not strand the finished layers of an earlier version."""

    def __init__(
        self, directory: str | Path, fingerprint: dict[str, Any], rank: int = 0, defaults: dict[str, Any] | None = None
    ) -> None:
        self.dir = Path(directory)
        self.rank = rank  # recorded with each layer this process saves
        self.dir.mkdir(parents=True, exist_ok=True)
        stamp = self.dir / "FINGERPRINT.json"
        text = json.dumps(fingerprint, sort_keys=True, default=str)
        if not stamp.is_file():
            io.write_text(stamp, text)
        elif (saved := stamp.read_text()) != text and not _earlier(saved, text, defaults or {}):
            raise UserError(f"{self.dir} holds layer results of another configuration; use a new run dir")

    def _paths(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}.pt", self.dir / f"{name}.json"

    def has(self, name: str) -> bool:
        return all(p.is_file() for p in self._paths(name))

    def save(self, name: str, state: dict[str, torch.Tensor], result: LayerResult) -> None:
        state_path, result_path = self._paths(name)
        io.torch_save(state_path, state)
        # written last: its presence marks "done"
        io.write_json(result_path, dataclasses.asdict(dataclasses.replace(result, rank=self.rank)))

    def load(self, name: str) -> tuple[dict[str, torch.Tensor], LayerResult]:
        state_path, result_path = self._paths(name)
        try:
            state = io.torch_load(state_path)
            result = LayerResult(**json.loads(result_path.read_text()))
        except Exception as e:
            raise UserError(f"cannot resume layer {name} from {self.dir}: {type(e).__name__}: {e}") from None
        return state, result


def _earlier(stamp: str, text: str, defaults: dict[str, Any]) -> bool:
    """Whether the stamp is this fingerprint as an earlier version wrote it (see `LayerStore`)."""
    try:
        old = json.loads(stamp)
    except ValueError:
        return False
    return same_but_added(old, json.loads(text), json.loads(json.dumps(defaults, sort_keys=True, default=str)))
