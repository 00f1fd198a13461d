"""Layer-wise reconstruction: independent runs (scheduled over ranks and buckets) or sequential ones, resumable
per layer."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl

from lwcompress.layerwise.config import LayerwiseConfig
from lwcompress.layerwise.run import LayerResult, LayerTask, layer_trainer, run_bucket
from lwcompress.layerwise.schedule import assign, buckets
from lwcompress.layerwise.sequential import reconstruct_sequential
from lwcompress.layerwise.store import LayerStore

__all__ = [
    "LayerResult",
    "LayerStore",
    "LayerTask",
    "LayerwiseConfig",
    "layer_trainer",
    "reconstruct",
    "reconstruct_sequential",
]


def reconstruct(
    tasks: list[LayerTask],
    cfg: LayerwiseConfig,
    make_trainer: Callable[[], pl.Trainer],
    rounding: str = "adaround",
    learn_weight_scale: bool = True,
    learn_input_scale: bool = False,
    store: LayerStore | None = None,
    world_size: int = 1,
    rank: int = 0,
) -> list[LayerResult]:
    """Run this rank's share of the layer tasks (bucket by bucket), reusing results `store` already holds.

    Each task's CompressedLayer is left in its final (hardened) state; results come back in task order.
    """
    params = [t.params for t in tasks]
    mine = assign(params, world_size, rank)
    results: dict[int, LayerResult] = {}
    todo = []
    for i in mine:
        if store is not None and store.has(tasks[i].name):
            state, results[i] = store.load(tasks[i].name)
            tasks[i].quant.load_state_dict(state)
        else:
            todo.append(i)
    for bucket in buckets(todo, params, cfg.bucket_params):
        chunk = [tasks[i] for i in bucket]
        for i, result in zip(bucket, run_bucket(chunk, cfg, make_trainer(), rounding, learn_weight_scale,
                                                learn_input_scale), strict=True):  # fmt: skip
            results[i] = result
            if store is not None:
                store.save(tasks[i].name, tasks[i].quant.state_dict(), result)
    return [results[i] for i in mine]
