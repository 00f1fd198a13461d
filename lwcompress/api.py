"""Python API: `compress(model, CompressorConfig(...))` from a notebook does what the CLI does.

Data flows one way: model -> graph analysis -> preconditioning -> data-free input ranges -> compressor.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import fx, nn

from lwcompress import __version__, io, precondition
from lwcompress.allocate import Allocation, allocate
from lwcompress.compress import COMPRESSORS, CompressedLayer, CompressorConfig, LayerRecord, integer_graph
from lwcompress.compress.packing import pack_state, unpack_state
from lwcompress.distributed import Ranks
from lwcompress.errors import UserError
from lwcompress.evaluate import size_bits
from lwcompress.fields import defaults
from lwcompress.generate import (
    GENERATORS,
    DistilledConfig,
    GenerationContext,
    GeneratorConfig,
    LayerData,
    activation_ranges,
    bn_gaussian_inputs,
    output_ranges,
    pixel_range,
)
from lwcompress.graph import LayerInfo, analyze
from lwcompress.layerwise import (
    LayerProgress,
    LayerResult,
    LayerStore,
    LayerTask,
    LayerwiseConfig,
    Learned,
    layer_trainer,
    learn,
)
from lwcompress.layerwise.gate import rounding_headroom, rounding_noise, untrained, worth_learning
from lwcompress.layerwise.guard import guard
from lwcompress.models.checkpoint import weights_digest
from lwcompress.precondition import PRECONDITIONERS, Preconditioner, PreconditionerConfig

log = logging.getLogger(__name__)

__all__ = ["ClosedForm", "CompressedModel", "Runtime", "closed_form", "compress", "export_onnx", "load_compressed"]


@dataclass
class CompressedModel:
    """A compressed network with what was done to each layer and what it cost."""

    model: nn.Module
    layers: list[LayerRecord]
    config: CompressorConfig
    preconditioner: PreconditionerConfig
    wall_s: float
    meta: dict[str, Any] = field(default_factory=dict)
    results: list[LayerResult] = field(default_factory=list)  # per-layer metrics of learned compressors

    def compressed_layers(self) -> dict[str, CompressedLayer]:
        return {n: m for n, m in self.model.named_modules() if isinstance(m, CompressedLayer)}

    def size_bits(self) -> int:
        """Storage in bits: compressed weights at their width (float: 32), pruned ones not at all but their mask at
        1 bit per weight (a bitmap), everything else (biases, scales) at 32 bits."""
        bits: dict[str, int] = {}
        stored = 0
        for name, q in self.compressed_layers().items():
            bits[f"{name}.layer.weight"] = 0
            kept = q.layer.weight.numel() if q.mask is None else int(q.mask.sum())
            stored += kept * (q.wbits or 32)
            if q.mask is not None:
                bits[f"{name}.mask"] = 1
        return size_bits(self.model, bits) + stored

    def weight_bits(self) -> int:
        """The compressible layers' weights at their widths (float: 32), pruned ones too: what
        `compressor.budget` counts (`size_bits` is the file's whole size instead)."""
        return sum(q.layer.weight.numel() * (q.wbits or 32) for q in self.compressed_layers().values())

    def average_wbits(self) -> float:
        """`weight_bits` per compressible weight: what `compressor.budget.wbits` bounds."""
        return self.weight_bits() / max(1, sum(q.layer.weight.numel() for q in self.compressed_layers().values()))

    def sparsity(self) -> float:
        """Fraction of all compressed layers' weights pruned by their masks."""
        layers = self.compressed_layers().values()
        pruned = sum(q.sparsity * q.layer.weight.numel() for q in layers)
        return pruned / max(1, sum(q.layer.weight.numel() for q in layers))

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Atomically write the model at its real size (`lwcompress.compress.packing`): weight codes packed at their
        bit width, masks at 1 bit, pruned weights not at all, the rest as float32; the file is `size_bits` plus a
        small header."""
        tensors, layout = pack_state(self.model.state_dict(), self.compressed_layers())
        payload = {
            "state_dict": tensors,
            "meta": {
                **self.meta,
                **(meta or {}),
                "compressor": dataclasses.asdict(self.config),
                "preconditioner": dataclasses.asdict(self.preconditioner),
                "packing": layout,
            },
        }
        return io.torch_save(path, payload)


@dataclass
class Runtime:
    """Where and how a compression runs, never what it computes (results are the same with any of these):

    make_trainer     the Lightning Trainer of the layer runs (default: `layerwise.layer_trainer`, CPU)
    store_dir        each finished layer (and each chunk of generated images) is saved there; a rerun resumes
    cache            a dict that keeps generated images across calls (pass the same one to reuse distilled images)
    image_cache_dir  keeps distilled images across processes and runs (same weights and generator settings: made once)
    ranks            a job of several processes: every rank calls `compress` with the same arguments and a shared
                     `store_dir`; rank 0 gets the model, the others None
    device           where generation and the forward passes that capture layer inputs run (the layer runs on the
                     trainer's)
    progress         hears of the layer runs as they finish (`lwcompress.progress.LayerDisplay`: a bar and a log line)
    """

    make_trainer: Callable[[], pl.Trainer] | None = None
    store_dir: str | Path | None = None
    cache: dict | None = None
    image_cache_dir: str | Path | None = None
    ranks: Ranks | None = None
    device: torch.device | str = "cpu"
    progress: LayerProgress | None = None


def compress(
    model: nn.Module,
    config: CompressorConfig,
    normalization: dict[str, list[float]],
    input_shape: tuple[int, ...],
    preconditioner: PreconditionerConfig | None = None,
    generator: GeneratorConfig | None = None,
    layerwise: LayerwiseConfig | None = None,
    real_images: torch.Tensor | None = None,
    runtime: Runtime | None = None,
) -> CompressedModel | None:
    """Compress a trained model; `model` itself is left untouched.

    `normalization` ({"mean": [...], "std": [...]}) and `input_shape` (C, H, W) describe the model's input,
    which the data-free input model needs. `preconditioner` (default: BN folding) rewrites the FP model around
    quantization. Learned compressors (`config.learned`) then train every layer on inputs from `generator`
    (default: distilled) under `layerwise`; `real_images` (normalized, never needed by the data-free generators)
    feed generator=real and the per-layer diagnostics on real activations. `runtime`: where and how it runs
    (processes, devices, stores that make it resumable, caches; `Runtime`). `meta["generate_wall_s"]` is the time
    spent generating, `meta["generate_reused_s"]` what reused images once cost.
    """
    rt = runtime or Runtime()
    start = time.perf_counter()
    pre, layerwise = precondition.preconditioner(preconditioner), layerwise or LayerwiseConfig()
    example = torch.zeros(1, *input_shape)
    shared = Path(rt.store_dir) if rt.store_dir is not None else None
    kept = Path(rt.image_cache_dir) if rt.image_cache_dir is not None else None
    cache = {} if rt.cache is None else rt.cache
    ctx = GenerationContext(tuple(input_shape), layerwise.spatial_size, real_images, cache, shared,
                            rt.ranks or Ranks(), rt.device, kept, pixel_range=pixel_range(normalization))  # fmt: skip

    _check_statistics(model, config, generator)
    model = pre.equalize(model.eval(), example)  # before analysis: BN statistics must match rescaled channels
    layers = analyze(model, example)
    data = LayerData(model, layers, generator or DistilledConfig(), ctx)  # made on first use
    # Opened before anything is generated: a run dir of another configuration fails at once.
    store = _layer_store(shared, data, config, pre, layerwise, ctx.ranks) if config.learned else None
    allocation = _allocated(model, layers, config, pre, normalization, data) if config.budget.active else None
    config = allocation.resolved(config) if allocation is not None else config
    ranges = activation_ranges(model, layers, config, normalization, data)
    closed = closed_form(model, layers, config, pre, ranges, data.cfg.seed)
    if config.integer_graph and not isinstance(closed.model, fx.GraphModule):
        raise UserError("compressor.integer_graph rewrites the BN-folded graph: keep preconditioner.fold_bn=true")
    tasks = _tasks(closed, data, layerwise) if config.learned else []
    gated = config.learned and (layerwise.learn_above is not None or layerwise.min_headroom is not None)
    noise = (rounding_noise(tasks, bn_gaussian_inputs(model, layers, layerwise.spatial_size), layerwise.eval_batch,
                            layerwise.seed) if gated else {})  # fmt: skip
    learns = config.learned and worth_learning(tasks, noise, layerwise.learn_above)
    if config.learned and not learns:
        log.info("every trained layer's round-to-nearest output error is at most %.1e (layerwise.learn_above=%g): "
                 "nothing to learn, the closed form is kept and no layer data is made",
                 max((noise[t.name] for t in tasks if t.train), default=0.0), layerwise.learn_above)  # fmt: skip
    # like learn_above's, the second gate passes models with a layer the BN-Gaussian model cannot describe: they learn
    measured = learns and layerwise.min_headroom is not None and all(t.name in noise for t in tasks)
    headroom = _headroom(closed, data, pre) if measured else None
    if headroom is not None and headroom <= layerwise.min_headroom:
        log.info("round-to-nearest's network is within KL %.2e of the FP network on the synthetic images "
                 "(layerwise.min_headroom=%g): too little lost for learning to win back, the closed form is kept",
                 headroom, layerwise.min_headroom)  # fmt: skip
        learns = False
    guarded = learns and layerwise.guard != "none"
    starts = {i.name: copy.deepcopy(closed.model.get_submodule(i.name)) for i in layers} if guarded else {}
    results = (_learn(tasks, data, config, pre, layerwise, rt.make_trainer, store, ctx.ranks, rt.progress)
               if learns else untrained(tasks, noise))  # fmt: skip
    if not ctx.ranks.is_main:
        return None
    checked = _guard(closed, starts, results, data, layerwise, pre) if guarded else {}
    # last: it reads the finished input grids (and, run on the closed form alone, rebuilds the structure on load)
    integer = integer_graph(closed.model, output_ranges(model, layers, config)) if config.integer_graph else None
    meta = {"normalization": normalization, "input_shape": list(input_shape), "generate_wall_s": ctx.wall_s,
            "generate_reused_s": ctx.reused_wall_s, "guard": checked, "learned": learns, "headroom": headroom,
            "allocation": dataclasses.asdict(allocation) if allocation is not None else None,
            "integer_graph": dataclasses.asdict(integer) if integer is not None else None}  # fmt: skip
    return _finished(closed, results, config, pre.cfg, meta, time.perf_counter() - start, example)


def _allocated(
    model: nn.Module, layers: list[LayerInfo], config: CompressorConfig, pre: Preconditioner,
    normalization: dict[str, list[float]], data: LayerData,
) -> Allocation:  # fmt: skip
    """`config.budget`'s per-layer widths (lwcompress/allocate), sensitivities measured in the generator's domain
    network on held-out synthetic images (made only if the allocation measures: "uniform" needs none)."""
    if config.budget.allocation == "sensitivity" and not data.has_domain:
        raise UserError(f"compressor.budget measures each layer's sensitivity in the generator's network, and "
                        f"generator={data.cfg.name} has none: use propagated, distilled or real")  # fmt: skip
    params = {i.name: model.get_submodule(i.name).weight.numel() for i in layers}

    @functools.cache  # weight and input budgets measure in the same network on the same images
    def measured_in() -> tuple[nn.Module, torch.Tensor]:
        domain, _ = data.domain()
        return pre.fold(domain).eval(), data.guard_images(config.budget.images)

    def rounded(c: CompressorConfig) -> tuple[nn.Module, dict[str, nn.Module]]:
        closed = closed_form(model, layers, c, pre, activation_ranges(model, layers, c, normalization, data),
                             data.cfg.seed)  # fmt: skip
        return closed.model, closed.references

    return allocate(config, layers, params, rounded, measured_in, data.float_inputs, data.cfg.chunk)


def _check_statistics(model: nn.Module, config: CompressorConfig, generator: GeneratorConfig | None) -> None:
    """Data-free activation ranges and synthetic layer inputs come from BatchNorm statistics: a model without any
    BatchNorm has none, and would silently keep float activations."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    if config.abits is not None or (
        config.learned and (generator is None or not GENERATORS.get(generator.name).pixels)
    ):
        raise UserError(f"model {type(model).__name__} has no BatchNorm layer: lwcompress takes activation ranges "
                        "and synthetic layer inputs from BN statistics (weight-only compressor=rtn "
                        "compressor.abits=null needs none)")  # fmt: skip


@dataclass
class ClosedForm:
    """The closed-form stage's output: the folded model with every layer wrapped and rounded / masked, what was
    done to each layer, and each layer's full-precision (folded) original."""

    model: nn.Module
    records: list[LayerRecord]
    layers: list[LayerInfo]
    references: dict[str, nn.Module]


def closed_form(
    model: nn.Module, layers: list[LayerInfo], config: CompressorConfig, pre: Preconditioner,
    ranges: dict[str, tuple[float, float] | None], seed: int = 0,
) -> ClosedForm:  # fmt: skip
    """The preconditioner's folded copy of the (equalized) `model`, every layer wrapped and rounded (or masked) by
    its closed form, then the preconditioner's correction (DFQ: bias correction, if asked)."""
    prepared = pre.fold(model).eval()
    references = {i.name: copy.deepcopy(prepared.get_submodule(i.name)).requires_grad_(False) for i in layers}
    spec = [(info.name, info.kind, info.is_first, info.is_last) for info in layers]
    records = COMPRESSORS.get(config.name)(prepared, spec, config, ranges)
    pre.correct(prepared, model, layers, seed)
    return ClosedForm(prepared, records, layers, references)


def _layer_store(
    store_dir: Path | None, data: LayerData, config: CompressorConfig, pre: Preconditioner,
    layerwise: LayerwiseConfig, ranks: Ranks,
) -> LayerStore | None:  # fmt: skip
    """The run's finished layers under `store_dir/layers`, stamped with everything that decides them."""
    if store_dir is None:
        return None
    settings = {"config": config, "generator": data.cfg, "layerwise": layerwise, "preconditioner": pre.cfg}
    fingerprint = {k: dataclasses.asdict(v) for k, v in settings.items()} | {"weights": weights_digest(data.model)}
    return LayerStore(store_dir / "layers", fingerprint, ranks.rank,
                      defaults={k: defaults(type(v)) for k, v in settings.items()})  # fmt: skip


def _tasks(closed: ClosedForm, data: LayerData, layerwise: LayerwiseConfig) -> list[LayerTask]:
    """One task per layer, started from its closed form; image-fed layers stay at round-to-nearest unless the
    images are real pixels (`LayerData.float_inputs`) or `layerwise.train_input_layers`."""
    held = data.held_out()
    fed = set() if layerwise.train_input_layers else data.float_inputs
    return [LayerTask(info.name, index, closed.model.get_submodule(info.name), closed.references[info.name], None,
                      info.activation, held.get(info.name), train=info.name not in fed)
            for index, info in enumerate(closed.layers)]  # fmt: skip


def _learn(
    tasks: list[LayerTask], data: LayerData, config: CompressorConfig, pre: Preconditioner,
    layerwise: LayerwiseConfig, make_trainer: Callable[[], pl.Trainer] | None, store: LayerStore | None, ranks: Ranks,
    progress: LayerProgress | None,
) -> list[LayerResult]:  # fmt: skip
    """The layer-wise stage: `tasks` run in `layerwise.mode`; layers past `layerwise.max_gap` are not trained."""
    if layerwise.max_gap is not None:
        gaps = data.gaps()
        for t in tasks:
            t.train = t.train and gaps.get(t.name, 0.0) <= layerwise.max_gap
    learned = Learned(config.rounding, config.learn_weight_scale, config.learn_input_scale, config.auto_gptq_wbits)
    return learn(tasks, data, layerwise, learned, make_trainer or layer_trainer, store, ranks, pre.fold,
                 progress)  # fmt: skip


def _headroom(closed: ClosedForm, data: LayerData, pre: Preconditioner) -> float | None:
    """What rounding lost, seen in the generator's domain (layerwise/gate.py `rounding_headroom`); None for
    generators without a domain network (nothing to measure in: they learn)."""
    if not data.has_domain:
        return None
    domain, images = data.domain()
    layers = {i.name: closed.model.get_submodule(i.name) for i in closed.layers}
    return rounding_headroom(layers, closed.references, pre.fold(domain).eval(), images, data.float_inputs,
                             data.cfg.chunk)  # fmt: skip


def _guard(
    closed: ClosedForm, starts: dict[str, CompressedLayer], results: list[LayerResult], data: LayerData,
    layerwise: LayerwiseConfig, pre: Preconditioner,
) -> dict[str, float]:  # fmt: skip
    """The network-level guard (layerwise/guard.py): layers it puts back to their closed form are marked reverted.
    Returns the synthetic logit errors it saw ({} for generators without a domain network)."""
    if not data.has_domain:
        return {}
    domain, _ = data.domain()
    names = [i.name for i in closed.layers]
    images = data.guard_images(layerwise.guard_images)
    back, errors = guard(names, [closed.model.get_submodule(n) for n in names], [starts[n] for n in names],
                         [closed.references[n] for n in names], pre.fold(domain).eval(), images,
                         data.float_inputs, layerwise.guard, data.cfg.chunk)  # fmt: skip
    for i, name in enumerate(names):
        if back[i] and not results[i].reverted:
            closed.model.get_submodule(name).load_state_dict(starts[name].state_dict())
            r = results[i]
            results[i] = dataclasses.replace(r, error=r.rtn_error, real_error=r.real_rtn_error, reverted=True)
    return {**errors, "reverted": float(sum(back))}


def _finished(
    closed: ClosedForm, results: list[LayerResult], config: CompressorConfig, pre: PreconditionerConfig,
    meta: dict[str, Any], wall_s: float, example: torch.Tensor,
) -> CompressedModel:  # fmt: skip
    """The compressed model with its final input grids recorded; never one that computes non-finite outputs."""
    with torch.no_grad():
        out = closed.model(example)
    if not torch.isfinite(out).all():
        raise FloatingPointError("the compressed model produces non-finite outputs")
    records = [dataclasses.replace(r, **_grid(closed.model.get_submodule(r.name))) for r in closed.records]
    return CompressedModel(closed.model, records, config, pre, wall_s, meta, results)


def _grid(q: CompressedLayer) -> dict[str, float | None]:
    lo, hi = q.input_range or (None, None)
    return {"input_lo": lo, "input_hi": hi}


def load_compressed(path: str | Path, model: nn.Module) -> CompressedModel:
    """Rebuild a compressed model saved by `CompressedModel.save` on top of its (uncompressed) architecture."""
    from lwcompress.models import load_checkpoint

    state, meta = load_checkpoint(path)
    if "compressor" not in meta:
        raise UserError(f"{path} is not a compressed checkpoint (no compressor in its meta)")
    config = CompressorConfig(**meta["compressor"])
    pre = PRECONDITIONERS.settings(**meta["preconditioner"])
    # The closed-form compressor rebuilds the structure (masks, grids, wrappers); the stored state overwrites it.
    result = compress(
        model, dataclasses.replace(config, name=config.closed_form), meta["normalization"],
        tuple(meta["input_shape"]), pre,
    )  # fmt: skip
    result.config = config
    if "packing" in meta:  # files before packing hold `<layer>.weight_codes` tensors directly
        try:
            state = unpack_state(state, meta["packing"], result.compressed_layers())
        except (KeyError, ValueError, RuntimeError) as e:
            raise UserError(f"compressed checkpoint {path} does not fit the model: {type(e).__name__}: {e}") from None
    codes = {k.removesuffix(".weight_codes"): state.pop(k) for k in list(state) if k.endswith(".weight_codes")}
    for name, q in result.compressed_layers().items():
        state.setdefault(f"{name}.layer.weight", q.layer.weight.detach().clone())
    try:
        result.model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"compressed checkpoint {path} does not fit the model: {str(e).splitlines()[0]}") from None
    for name, q in result.compressed_layers().items():
        if name in codes:
            q.load_codes(codes[name])
    result.meta = meta
    return result


def export_onnx(result: CompressedModel, path: str | Path, config: dict[str, Any] | None = None,
                int4: bool = True, bias: str = "float", keep_float: Sequence[str] = ()) -> Path:  # fmt: skip
    """Atomically write `result` as an ONNX model that stock onnxruntime runs (format: lwcompress/export/onnx_graph.py),
    with the lwcompress version, a digest of `config` (the run's config; default: the compressor's and
    preconditioner's), each layer's bits and storage type, the input normalization and the storage format in its
    metadata. `int4` stores weights of 4 bit and below as int4/uint4, else as int8/uint8 holding the k-bit codes;
    `bias`: float (exact) or int32 (integer kernels; see `lwcompress.export.to_onnx`); `keep_float`: rules naming
    layers that run as float kernels all the same (`lwcompress.export.kept_float`)."""
    from lwcompress.export import to_onnx, weight_storage

    config = config or {"compressor": dataclasses.asdict(result.config),
                        "preconditioner": dataclasses.asdict(result.preconditioner)}  # fmt: skip
    layers = {name: {"wbits": q.wbits, "abits": q.abits, "sparsity": round(q.sparsity, 6),
                     "weight_storage": weight_storage(q.wbits, q.symmetric, int4)}
              for name, q in result.compressed_layers().items()}  # fmt: skip
    metadata = {
        "lwcompress_version": __version__,
        "config_digest": hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16],
        "layers": json.dumps(layers),
        "normalization": json.dumps(result.meta["normalization"]),
        "input_shape": json.dumps(result.meta["input_shape"]),
    }
    example = torch.zeros(1, *result.meta["input_shape"])
    proto = to_onnx(result.model, example, metadata, int4, bias, keep_float=keep_float)
    return io.write_bytes(path, proto.SerializeToString())
