"""The FP accuracy cache key: what selects or transforms the evaluated images is in it, loader settings are not."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from lwcompress.data import DataConfig
from lwcompress.eval_cache import FPCache, fp_key

NORM = {"mean": [0.286], "std": [0.353]}


def test_key_follows_weights_images_and_split_not_loader_settings() -> None:
    data = DataConfig()
    key = fp_key("abc", asdict(data), "test", NORM)
    assert fp_key("abc", asdict(replace(data, eval_batch_size=7, num_workers=2)), "test", NORM) == key
    assert len({key, fp_key("abd", asdict(data), "test", NORM), fp_key("abc", asdict(data), "val", NORM),
                fp_key("abc", asdict(replace(data, val_size=100)), "test", NORM),
                fp_key("abc", asdict(data), "test", {"mean": [0.5], "std": [0.5]}),
                fp_key("abc", asdict(data), "test", NORM, limit=2)}) == 6  # fmt: skip
    assert fp_key("abc", asdict(data), "test", NORM, limit=1.0) == key  # a smoke run's few batches are another key


def test_unreadable_entry_is_a_miss(tmp_path: Path) -> None:
    cache = FPCache(tmp_path)
    assert cache.get("k") is None
    cache.put("k", {"top1": 91.5})
    assert cache.get("k") == {"top1": 91.5}
    (tmp_path / "cache" / "fp_top1" / "k.json").write_text("{trunc")
    assert cache.get("k") is None
