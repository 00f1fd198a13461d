"""Sequential layer runs: each layer is trained on its inputs inside the network whose earlier layers are already
compressed, against the FP layer's output on the FP network's inputs for the same images, so it learns to undo the
error that reaches it (AdaRound's "asymmetric" reconstruction). Layers then depend on each other and run in order.

Runs happen in a *domain*: a BN network and images whose plain forward gives the generator's layer inputs (real
images through the model; for propagated data the model with its BatchNorms holding the noise batch's statistics).
Folding the domain network scales each output channel of a layer by r = (training-statistics std) / (domain std)
relative to the deployed folding, so the layer's quantization grid is scaled by the same r there: the integer codes,
and so the rounding choices, carry over exactly, and the result is copied back as codes.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn

from lwcompress.compress.modules import CompressedLayer
from lwcompress.generate import PairedPool, Stepwise
from lwcompress.layerwise.blocks import block_module, run_block
from lwcompress.layerwise.config import LayerwiseConfig
from lwcompress.layerwise.progress import LayerProgress
from lwcompress.layerwise.run import LayerResult, LayerTask, Learned, held_out_error, run_bucket
from lwcompress.layerwise.schedule import runs_of
from lwcompress.layerwise.store import LayerStore


def channel_ratio(weight: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per output channel, how much larger `weight` is than `reference` (1 where the reference is all zero)."""
    dims = list(range(1, weight.ndim))
    num, den = weight.double().pow(2).sum(dims).sqrt(), reference.double().pow(2).sum(dims).sqrt()
    return torch.where(den > 0, num / den.clamp_min(1e-30), torch.ones_like(den)).float()


def into_domain(q: CompressedLayer, layer: nn.Module, ratio: torch.Tensor, float_input: bool) -> CompressedLayer:
    """A copy of `q` that quantizes `layer` (the same layer folded in the domain) on q's grid scaled by `ratio`.

    float_input: leave its input unquantized, for image-fed layers in a synthetic domain (noise images lie far
    outside the pixel grid; clipping them would inject an error real images never see).
    """
    d = copy.deepcopy(q)
    d.layer = copy.deepcopy(layer).requires_grad_(False)
    with torch.no_grad():
        d.w_scale.copy_(q.w_scale * ratio.view_as(q.w_scale))
        if d.mask is not None:
            d.layer.weight.mul_(d.mask)
    if float_input:
        d.abits = None
    return d


@torch.no_grad()
def transfer(src: CompressedLayer, dst: CompressedLayer, ratio: torch.Tensor, start_bias: torch.Tensor | None) -> None:
    """Give `dst` the finished state of `src` across foldings: the grid scaled by `ratio` (dst / src per output
    channel; a pruned layer's grid may have been refit), the input grid, the integer codes, and the change of the
    bias since `start_bias` (biases live in the BN-output space, which both foldings share). Domain -> model after
    a run, model -> domain on resume."""
    dst.w_scale.copy_(src.w_scale * ratio.view_as(dst.w_scale))
    dst.w_zero_point.copy_(src.w_zero_point)  # integer grid positions: the same in both foldings
    if src.abits is not None and dst.abits is not None:
        dst.a_scale.copy_(src.a_scale)
    dst.load_codes(src.codes())
    if start_bias is not None:
        dst.layer.bias.add_(src.layer.bias - start_bias)


def _bias(q: CompressedLayer) -> torch.Tensor | None:
    return q.layer.bias.detach().clone() if q.layer.bias is not None else None


def reconstruct_sequential(
    tasks: list[LayerTask],
    cfg: LayerwiseConfig,
    make_trainer: Callable[[], pl.Trainer],
    domain: nn.Module,
    images: torch.Tensor,
    float_inputs: set[str],
    learned: Learned | None = None,
    store: LayerStore | None = None,
    chunk: int = 64,
    device: torch.device | str = "cpu",
    progress: LayerProgress | None = None,
    blocks: dict[str, str] | None = None,
) -> list[LayerResult]:
    """Train `tasks` (in model order) one after another in `domain` (the folded domain network, BN-free where the
    deployed model is) on `images`; each task's CompressedLayer ends hardened with the learned codes. Finished layers
    are stored and reloaded, so a killed run resumes where it stopped.

    Layers before the first task stay full precision: a segment of a longer sequential run starts from the FP
    network's inputs. Batches are `cfg.spatial_size` crops of the captured inputs; the forward passes that capture
    them run on `device`. `progress` hears of each layer that was run (not reloaded). `blocks` (layer -> block, see
    layerwise/blocks.py): consecutive tasks of one block learn together against the block's output."""
    learned = learned or Learned()
    # Against the unpruned reference: a pruned weight's norm says nothing about the folding.
    ratios = {t.name: channel_ratio(domain.get_submodule(t.name).weight, t.reference.weight) for t in tasks}
    doms = {t.name: into_domain(t.quant, domain.get_submodule(t.name), ratios[t.name], t.name in float_inputs)
            for t in tasks}  # fmt: skip
    compressed = Stepwise(domain, images, chunk, device, replaced=doms)  # the compressed network, one layer a step
    fp = Stepwise(domain, images, chunk, device) if cfg.target == "fp" else None
    metric = "mse" if cfg.loss == "mse_channel" else cfg.loss
    results = []
    blocks = blocks or {}
    for unit in ([tasks[i] for i in run] for run in runs_of([blocks.get(t.name) for t in tasks])):
        if store is not None and all(store.has(t.name) for t in unit):
            for t in unit:
                state, result = store.load(t.name)
                start_bias = _bias(t.quant)
                t.quant.load_state_dict(state)
                transfer(t.quant, doms[t.name], ratios[t.name], start_bias)
                results.append(result)
            continue
        name = blocks[unit[0].name] if len(unit) > 1 else unit[0].name
        real_rtn = [held_out_error(t, t.real_inputs, metric) if t.real_inputs is not None else None for t in unit]
        x = compressed.input_of(name)
        inputs = PairedPool(x, cfg.spatial_size, reference=fp.input_of(name) if fp is not None else x)
        start_biases = [_bias(doms[t.name]) for t in unit]
        runs = [dataclasses.replace(t, quant=doms[t.name], reference=domain.get_submodule(t.name), inputs=inputs,
                                    real_inputs=None) for t in unit]  # fmt: skip
        if len(unit) > 1:
            qblock = block_module(domain, name, replaced={t.name: doms[t.name] for t in unit})
            done = run_block(runs, qblock, block_module(domain, name), inputs, cfg, make_trainer, learned)
        else:
            done = run_bucket(runs, cfg, make_trainer, learned)
        for t, result, start_bias, rtn in zip(unit, done, start_biases, real_rtn, strict=True):
            transfer(doms[t.name], t.quant, 1 / ratios[t.name], start_bias)
            t.quant.harden()
            real_error = held_out_error(t, t.real_inputs, metric) if t.real_inputs is not None else None
            result = dataclasses.replace(result, real_rtn_error=rtn, real_error=real_error)
            if store is not None:
                store.save(t.name, t.quant.state_dict(), result)
            if progress is not None:
                progress.layer_done(result)
            results.append(result)
    return results
