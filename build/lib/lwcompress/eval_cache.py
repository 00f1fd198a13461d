"""FP accuracy cached per (weights, evaluation data, split, normalization) under the data dir, so that sweeps and
reruns evaluate the uncompressed model once (an evaluation of the Fashion-MNIST test set costs 20-35 s on 2 cores)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lwcompress import io

# Data settings that do not change which images are evaluated or how they look.
LOADER_KEYS = ("batch_size", "eval_batch_size", "num_workers", "download")


def fp_key(weights: str, data: dict[str, Any], split: str, normalization: dict[str, list[float]],
           limit: float = 1.0) -> str:  # fmt: skip
    """The cache key: the weights' digest, the data config that selects and transforms the images, the split, and
    the part of it evaluated (trainer.limit_test_batches / limit_val_batches; smoke runs evaluate a few batches)."""
    relevant = {k: v for k, v in data.items() if k not in LOADER_KEYS}
    key = {"weights": weights, "data": relevant, "split": split, "normalization": normalization}
    if limit != 1.0:  # the whole split keeps its old keys
        key["limit"] = limit
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class FPCache:
    """One small JSON file per key in `<data_dir>/cache/fp_top1`; a missing or unreadable entry is a miss."""

    def __init__(self, data_dir: str | Path) -> None:
        self.dir = Path(data_dir) / "cache" / "fp_top1"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            entry = json.loads((self.dir / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and isinstance(entry.get("top1"), int | float) else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        io.write_json(self.dir / f"{key}.json", entry)
