"""Layer-wise reconstruction: independent runs (in buckets) or sequential ones (in segments), shared over the
ranks of a job and resumable per layer."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytorch_lightning as pl
from torch import nn

from lwcompress.distributed import Ranks
from lwcompress.generate import LayerData
from lwcompress.layerwise.blocks import learnable_blocks, without_blocks
from lwcompress.layerwise.config import LayerwiseConfig
from lwcompress.layerwise.progress import LayerProgress
from lwcompress.layerwise.run import LayerResult, LayerTask, Learned, layer_trainer, run_bucket
from lwcompress.layerwise.schedule import buckets, segments
from lwcompress.layerwise.sequential import reconstruct_sequential
from lwcompress.layerwise.store import LayerStore

__all__ = [
    "LayerProgress",
    "LayerResult",
    "LayerStore",
    "LayerTask",
    "Learned",
    "LayerwiseConfig",
    "layer_trainer",
    "learn",
    "reconstruct",
    "reconstruct_sequential",
]

log = logging.getLogger(__name__)


def learn(
    tasks: list[LayerTask],
    data: LayerData,
    cfg: LayerwiseConfig,
    learned: Learned,
    make_trainer: Callable[[], pl.Trainer] = layer_trainer,
    store: LayerStore | None = None,
    ranks: Ranks | None = None,
    prepare: Callable[[nn.Module], nn.Module] | None = None,
    progress: LayerProgress | None = None,
) -> list[LayerResult]:
    """Every layer's run in `cfg.mode`, on `data`; each task's CompressedLayer ends hardened with its learned state.

    The work comes in units: single layers (independent mode) or contiguous segments (sequential mode, each
    sequential inside itself, its first layer fed by the FP network; with unit=block a segment never cuts a
    block). With several ranks each runs its share of the units into `store`, then rank 0 assembles every layer
    from it and the others return [].
    `prepare` turns the generator's BN network into the deployed form the tasks' layers live in (BN folding).
    `progress` hears of this process's layers as they finish (rank 0 reloading the others' is not reported).
    """
    ranks = ranks or Ranks()
    mean = sum(t.params for t in tasks) / len(tasks)
    costs = [t.params + mean for t in tasks]  # a run's time: a fixed part (its steps), a part growing with size
    if cfg.mode == "sequential":
        domain, images = data.domain()
        domain = (prepare(domain) if prepare is not None else domain).eval()
        reason = without_blocks(learned, [t.quant for t in tasks], cfg) if cfg.unit == "block" else None
        if reason:
            log.info("layerwise.unit=block: %s, so the blocks that hold such layers run layer by layer", reason)
        blocks = learnable_blocks(domain, {t.name: t.quant for t in tasks}, learned, cfg) if cfg.unit == "block" else {}
        units = segments(costs, cfg.segments, together=[blocks.get(t.name) for t in tasks])

        def run(chosen: list[list[int]], report: LayerProgress | None) -> list[LayerResult]:
            return [result for unit in chosen
                    for result in reconstruct_sequential([tasks[i] for i in unit], cfg, make_trainer, domain, images,
                                                         data.float_inputs, learned, store, data.cfg.chunk,
                                                         data.ctx.device, report, blocks)]  # fmt: skip
    else:
        inputs = data.inputs()
        for t in tasks:
            t.inputs = inputs[t.name]
        units = [[i] for i in range(len(tasks))]

        def run(chosen: list[list[int]], report: LayerProgress | None) -> list[LayerResult]:
            return reconstruct([tasks[i] for unit in chosen for i in unit], cfg, make_trainer, learned, store, report)

    if ranks.world_size > 1:
        if store is None:
            raise ValueError("the ranks of a job share their layers through a LayerStore")
        mine = [units[i] for i in ranks.share([sum(costs[i] for i in u) for u in units])]
        _reported(run, mine, tasks, costs, store, progress)
        ranks.barrier("layers")
        if not ranks.is_main:
            return []
        return run(units, None)  # rank 0 reloads every layer from the store
    return _reported(run, units, tasks, costs, store, progress)


def _reported(
    run: Callable[[list[list[int]], LayerProgress | None], list[LayerResult]], units: list[list[int]],
    tasks: list[LayerTask], costs: list[float], store: LayerStore | None, progress: LayerProgress | None,
) -> list[LayerResult]:  # fmt: skip
    """`run(units)` between `progress.begin` (which layers, at what cost, which reused) and `progress.end`."""
    if progress is None:
        return run(units, None)
    order = [i for unit in units for i in unit]
    progress.begin([tasks[i].name for i in order], [costs[i] for i in order],
                   [store is not None and store.has(tasks[i].name) for i in order])  # fmt: skip
    results = run(units, progress)
    progress.end()
    return results


def reconstruct(
    tasks: list[LayerTask],
    cfg: LayerwiseConfig,
    make_trainer: Callable[[], pl.Trainer],
    learned: Learned | None = None,
    store: LayerStore | None = None,
    progress: LayerProgress | None = None,
) -> list[LayerResult]:
    """Independent runs of `tasks` (bucket by bucket), reusing results `store` already holds; results in task order.

    Each task's CompressedLayer is left in its final (hardened) state.
    """
    learned = learned or Learned()
    results: dict[int, LayerResult] = {}
    todo = []
    for i, task in enumerate(tasks):
        if store is not None and store.has(task.name):
            state, results[i] = store.load(task.name)
            task.quant.load_state_dict(state)
        else:
            todo.append(i)
    params = [t.params for t in tasks]
    for bucket in buckets(todo, params, cfg.bucket_params):
        for i, result in zip(bucket, run_bucket([tasks[i] for i in bucket], cfg, make_trainer, learned), strict=True):
            results[i] = result
            if store is not None:
                store.save(tasks[i].name, tasks[i].quant.state_dict(), result)
            if progress is not None:
                progress.layer_done(result)
    return [results[i] for i in range(len(tasks))]
