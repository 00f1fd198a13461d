"""Block units (layerwise.unit=block): the layers of a residual / inverted-residual block learn together to reproduce
the FP block's output (BRECQ, Li et al. 2021), so a layer's rounding is judged by what it does to the block's output,
activation grids inside the block included, rather than by its own output alone.

A block is found from the model's structure, never its name: the child of the outermost nn.Sequential on a layer's
module path in fx's trace (a stage's block in ResNets and MobileNets; the stem and the head, outside any Sequential,
stay single layers), provided the trace shows it as one input -> one output (a residual add inside is fine).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from operator import attrgetter

import pytorch_lightning as pl
import torch
from torch import fx, nn
from torch.utils.data import DataLoader

from lwcompress.compress.modules import CompressedLayer
from lwcompress.generate.inputs import PairedPool, layer_stream
from lwcompress.graph.trace import module_path, runs_in, trace
from lwcompress.layerwise.config import LayerwiseConfig
from lwcompress.layerwise.rounding import ROUNDINGS, TrainedRounding, trained_rounding
from lwcompress.layerwise.run import (
    LayerResult,
    LayerTask,
    Learned,
    draw,
    optimizer,
    param_groups,
    penalty,
    relative_error,
)


def block_of(node: fx.Node) -> str:
    """The block the layer called at `node` belongs to: the child of the outermost nn.Sequential on its module path,
    or the layer itself where no Sequential holds it."""
    path = module_path(node)
    for depth, (_, cls) in enumerate(path[:-1]):
        if issubclass(cls, nn.Sequential):
            return path[depth + 1][0]
    return str(node.target)


def block_map(model: nn.Module, names: Sequence[str]) -> dict[str, str]:
    """Layer name -> block name for the layers that share a block with others and whose block is one input -> one
    output in fx's trace of `model` (the units block runs can feed and judge); other layers run alone. `model` may
    be a BN-folded GraphModule: its nodes remember the original modules."""
    nodes = list(trace(model).graph.nodes)
    calls = {str(n.target): n for n in nodes if n.op == "call_module"}
    blocks = {n: block_of(calls[n]) for n in names}
    single = set()
    for block in {b for b in blocks.values() if sum(v == b for v in blocks.values()) > 1}:
        inside = [n for n in nodes if runs_in(n, block)]
        inputs, outputs = _ends(inside)
        if len(outputs) == 1 and inputs == set(inside[0].all_input_nodes[:1]):  # fed by what its first op reads
            single.add(block)
    return {n: b for n, b in blocks.items() if b in single}


def _ends(inside: list[fx.Node]) -> tuple[set[fx.Node], list[fx.Node]]:
    """(the nodes from outside that `inside` reads, the nodes of `inside` read outside it)."""
    members = set(inside)
    inputs = {a for n in inside for a in n.all_input_nodes if a not in members}
    return inputs, [n for n in inside if any(u not in members for u in n.users)]


def without_blocks(learned: Learned, layers: list[CompressedLayer], cfg: LayerwiseConfig) -> str | None:
    """Why `layers` cannot learn as one block unit, or None if they can: a rounding without a block form (GPTQ solves
    one layer from its own inputs; rounding=auto gives it the layers of at most `learned.gptq_wbits`-bit weights, unless
    `cfg.auto_blocks` has blocks learn them by AdaRound) or a pruned layer (its survivors are refit from its own
    inputs)."""
    for q in layers:
        name = "adaround" if learned.rounding == "auto" and cfg.auto_blocks == "adaround" else learned.rounding_of(q)
        if not ROUNDINGS.get(name).block_form:
            given = "" if name == learned.rounding else f" gives {q.wbits}-bit layers {name}, which"
            return f"compressor.rounding={learned.rounding}{given} solves single layers"
    if any(q.mask is not None for q in layers):
        return "pruned layers are refit one by one"
    return None


def learnable_blocks(
    model: nn.Module, layers: dict[str, CompressedLayer], learned: Learned, cfg: LayerwiseConfig
) -> dict[str, str]:  # fmt: skip
    """`block_map` of `layers` (by name) less every block that holds a layer unable to learn in one
    (`without_blocks`): such a block runs layer by layer, the others stay units. No trace where no layer can."""
    alone = {name for name, q in layers.items() if without_blocks(learned, [q], cfg)}
    if len(alone) == len(layers):
        return {}
    blocks = block_map(model, list(layers))
    split = {blocks[name] for name in alone if name in blocks}
    return {name: block for name, block in blocks.items() if block not in split}


def block_rounding(learned: Learned, cfg: LayerwiseConfig) -> Callable[[CompressedLayer, bool], TrainedRounding]:
    """The rounding block units learn, with its settings: AdaRound where the choice is "auto" (a block with a layer
    that "auto" solves by GPTQ runs layer by layer, see `learnable_blocks`)."""
    name = "adaround" if learned.rounding == "auto" else learned.rounding
    return trained_rounding(ROUNDINGS.get(name), cfg.rounding_settings(name))


def block_module(model: nn.Module, block: str, replaced: dict[str, nn.Module] | None = None) -> fx.GraphModule:
    """Block `block` of `model` (a single-input one, see `block_map`) as a module of its own, sharing `model`'s
    modules, with the modules named in `replaced` (qualified names) swapped for the given ones themselves, not
    copies: what a block run trains is what the network then uses."""
    gm = trace(model)
    inside = [n for n in gm.graph.nodes if runs_in(n, block)]
    (source,), (sink,) = _ends(inside)
    graph = fx.Graph()
    env = {source: graph.placeholder("x")}
    for node in inside:
        env[node] = graph.node_copy(node, lambda a: env[a])
    graph.output(env[sink])
    replaced = replaced or {}
    targets = {str(n.target) for n in inside if n.op in ("call_module", "get_attr")}
    root = {t: replaced[t] if t in replaced else attrgetter(t)(gm) for t in targets}
    return fx.GraphModule(root, graph, f"block_{block}").eval()


class BlockModule(pl.LightningModule):
    """Trains the CompressedLayers of one block to make the block reproduce the FP block on freshly drawn inputs."""

    def __init__(
        self, block: nn.Module, reference: nn.Module, layers: list[CompressedLayer], inputs: PairedPool,
        cfg: LayerwiseConfig, output_std: float, rtn_error: float, index: int,
    ) -> None:  # fmt: skip
        super().__init__()
        self.automatic_optimization = False
        self.block, self.reference, self.inputs, self.cfg = block, reference, inputs, cfg
        self.layers = layers  # submodules of `block` already
        self.output_std, self.rtn_error = output_std, rtn_error
        self.stream = layer_stream(cfg.seed, index)
        self.losses: list[float] = []

    def configure_optimizers(self):
        return optimizer([g for q in self.layers for g in param_groups(q, self.cfg, self.output_std)], self.cfg)

    def training_step(self, batch, batch_idx: int) -> None:
        opt = self.optimizers()
        opt.zero_grad()
        progress = batch_idx / max(1, self.cfg.steps)
        x, x_ref = (t.to(self.device) for t in draw(self.inputs, self.cfg.batch_size, self.stream))
        with torch.no_grad():
            target = self.reference(x_ref)
        loss = relative_error(self.block(x), target, _metric(self.cfg), None)
        self.losses.append(float(loss.detach()))
        self.manual_backward(loss + sum(penalty(q, self.cfg, progress, self.rtn_error) for q in self.layers))
        opt.step()
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()


def _metric(cfg: LayerwiseConfig) -> str:
    """A block's output has no activation of its own to apply: mse, or mse per channel."""
    return "mse_channel" if cfg.loss == "mse_channel" else "mse"


@torch.no_grad()
def _error(block: nn.Module, reference: nn.Module, x: tuple[torch.Tensor, torch.Tensor]) -> float:
    return float(relative_error(block(x[0]), reference(x[1]), "mse", None))


def run_block(
    tasks: list[LayerTask], block: nn.Module, reference: nn.Module, inputs: PairedPool, cfg: LayerwiseConfig,
    make_trainer: Callable[[], pl.Trainer], learned: Learned,
) -> list[LayerResult]:  # fmt: skip
    """Reconstruct one block: `block` holds the tasks' CompressedLayers (see `block_module`), `reference` is the FP
    block, `inputs` its input pool. Each layer's result carries the block's held-out error before (round-to-nearest)
    and after; a block that ends worse is put back whole. Layers end hardened."""
    layers = [t.quant for t in tasks]
    if reason := without_blocks(learned, layers, cfg):
        raise ValueError(f"a block unit of layers that have no block form: {reason}")
    for q in layers:
        q.eval()
    index = tasks[0].index
    held = draw(inputs, cfg.eval_batch, layer_stream(cfg.seed + 1, index))
    rtn = _error(block, reference, held)
    initial = [{k: v.clone() for k, v in q.state_dict().items()} for q in layers]
    with torch.no_grad():
        output_std = float(reference(held[1]).std())
    trained = [t.quant for t in tasks if t.train]
    for q in trained:
        q.make_trainable(block_rounding(learned, cfg), learned.weight_scale, learned.input_scale, cfg.train_bias,
                         cfg.drop_prob)  # fmt: skip
        q.train()  # QDrop acts in training mode; the rest of the block stays in eval mode
    module = BlockModule(block, reference, trained, inputs, cfg, output_std, rtn, index)
    start = time.perf_counter()
    if cfg.steps > 0 and trained:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
            make_trainer().fit(module, train_dataloaders=DataLoader(range(cfg.steps), batch_size=None))
    wall_s = time.perf_counter() - start
    for q in layers:
        q.harden()
        q.cpu().eval()
    block.cpu()
    error = _error(block, reference.cpu(), held)
    reverted = bool(trained) and cfg.keep_better and error > (1 - cfg.min_gain) * rtn
    if reverted:
        for q, state in zip(layers, initial, strict=True):
            q.load_state_dict(state)
        error = rtn
    return [LayerResult(t.name, rtn, error, None, None, reverted and t.train, wall_s / len(tasks),
                        losses=module.losses if t.train else []) for t in tasks]  # fmt: skip
