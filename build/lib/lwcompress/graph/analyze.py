"""Compressible layers of a traced CNN and the elementwise path that feeds each one.

The layer-wise method synthesizes a layer's input without running earlier convolutions: it samples the
tensors where the input's backward walk stops (BN outputs, the model input, raw conv outputs) and replays only
the cheap ops in between (ReLU, residual adds, pooling, flatten, ...). `analyze` finds those stops and
packages the replay as a small GraphModule per layer.
"""

from __future__ import annotations

import copy
import operator
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.node import Argument, Node, map_arg
from torch.fx.passes.shape_prop import ShapeProp

from lwcompress.errors import UserError
from lwcompress.graph.trace import eval_mode, trace

LayerKind = Literal["conv", "depthwise", "grouped", "linear"]
SourceKind = Literal["input", "bn", "layer"]

BN_TYPES: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)


@dataclass(frozen=True)
class Source:
    """A tensor where a layer input's backward walk stops, i.e. what a generator has to sample.

    kind: "input" (a model placeholder; `name` is the argument name), "bn" (a BatchNorm output; `name` is the
    module), "layer" (anything else: a conv/linear without BN, a non-elementwise op; `name` is the module for
    call_module nodes, else the fx node name). `channels` is None where it cannot be known without an example
    input; `shape` (per sample, no batch dim) is only filled when `analyze` got an example input.
    """

    kind: SourceKind
    name: str
    channels: int | None
    shape: tuple[int, ...] | None = None


@dataclass
class LayerInfo:
    """One compressible layer (nn.Conv2d or nn.Linear call) and how to rebuild its input from its sources.

    `path(*tensors)` takes one tensor per entry of `sources`, in that order, and returns the layer's input;
    it holds only the elementwise ops named in `ops` (in execution order) and never modifies its arguments.
    Module names (`name`, `bn`, source names) are qualified names in the analyzed model.
    """

    name: str
    kind: LayerKind
    bn: str | None
    sources: list[Source]
    ops: list[str]
    path: fx.GraphModule = field(repr=False)
    is_first: bool = False
    is_last: bool = False
    input_shape: tuple[int, ...] | None = None
    activation: str | None = None  # "relu" / "relu6" when that alone consumes the layer's (BN) output


# --- the elementwise whitelist -----------------------------------------------------------------------------
# Anything not listed here stops the walk and becomes a "layer" source: including an op by accident would make
# the synthetic data silently wrong, stopping too early only costs realism.

_MODULE_OPS: dict[type[nn.Module], str] = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.Hardtanh: "hardtanh",
    nn.AvgPool2d: "avg_pool2d",
    nn.MaxPool2d: "max_pool2d",
    nn.AdaptiveAvgPool2d: "adaptive_avg_pool2d",
    nn.AdaptiveMaxPool2d: "adaptive_max_pool2d",
    nn.Flatten: "flatten",
}
# Identity in eval mode: passed through in the path rather than copied, so `path.train()` cannot turn them on.
_PASS_MODULES: dict[type[nn.Module], str] = {
    nn.Dropout: "dropout",
    nn.Dropout2d: "dropout",
    nn.Identity: "identity",
}

# One-tensor functions: target -> (op name, non-inplace replacement).
_UNARY_FUNCS: dict[Callable[..., Any], tuple[str, Callable[..., Any]]] = {
    F.relu: ("relu", F.relu),
    torch.relu: ("relu", torch.relu),
    torch.relu_: ("relu", torch.relu),
    F.relu6: ("relu6", F.relu6),
    F.hardtanh: ("hardtanh", F.hardtanh),
    torch.flatten: ("flatten", torch.flatten),
    F.avg_pool2d: ("avg_pool2d", F.avg_pool2d),
    F.max_pool2d: ("max_pool2d", F.max_pool2d),
    F.adaptive_avg_pool2d: ("adaptive_avg_pool2d", F.adaptive_avg_pool2d),
    F.adaptive_max_pool2d: ("adaptive_max_pool2d", F.adaptive_max_pool2d),
}
# Positional index of an `inplace` flag, where a function has one.
_INPLACE_POS: dict[Callable[..., Any], int] = {F.relu: 1, F.relu6: 1, F.hardtanh: 3}
# Positional index of `return_indices` (a tuple result is not a tensor path).
_INDICES_POS: dict[Callable[..., Any], int] = {F.max_pool2d: 6, F.adaptive_max_pool2d: 2}
_ADD_FUNCS: dict[Callable[..., Any], Callable[..., Any]] = {
    operator.add: operator.add,
    operator.iadd: operator.add,
    torch.add: torch.add,
}
_CAT_FUNCS = (torch.cat, torch.concat)
_UNARY_METHODS: dict[str, tuple[str, str]] = {
    "relu": ("relu", "relu"),
    "relu_": ("relu", "relu"),
    "flatten": ("flatten", "flatten"),
}
_ADD_METHODS = {"add": "add", "add_": "add"}

# Ops after which a tensor still has the channels of its input (used to infer the input's channel count).
_CHANNEL_PRESERVING = {
    "relu",
    "relu6",
    "hardtanh",
    "add",
    "avg_pool2d",
    "max_pool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "dropout",
    "identity",
}

Env = dict[Node, Node]


@dataclass
class _Step:
    """How one accepted node is replayed in a path: its op name, tensor inputs, and a node builder."""

    op: str
    inputs: list[Node]
    emit: Callable[[fx.Graph, Env], Node]


def _has_node(args: Argument) -> bool:
    found = False

    def visit(n: Node) -> Node:
        nonlocal found
        found = True
        return n

    map_arg(args, visit)
    return found


def _create(node: Node, name: str, op: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Step:
    """Step `name` that re-creates `node` as (op, target, args, kwargs); its inputs are the Nodes in args."""
    inputs: list[Node] = []

    def collect(n: Node) -> Node:
        inputs.append(n)
        return n

    map_arg((args, kwargs), collect)

    def emit(graph: fx.Graph, env: Env) -> Node:
        new_args, new_kwargs = map_arg((args, kwargs), lambda n: env[n])
        return graph.create_node(op, target, new_args, new_kwargs, name=node.name)

    return _Step(name, inputs, emit)


def _pass_through(op: str, inp: Node) -> _Step:
    return _Step(op, [inp], lambda graph, env: env[inp])


def _split_tensor_arg(node: Node) -> tuple[Any, tuple[Any, ...], dict[str, Any]] | None:
    """(tensor, other args, kwargs) of a one-tensor call, the tensor given positionally or as `input`."""
    if node.args:
        return node.args[0], tuple(node.args[1:]), dict(node.kwargs)
    if "input" in node.kwargs:
        kwargs = dict(node.kwargs)
        return kwargs.pop("input"), (), kwargs
    return None


def _is_batch_size(arg: Argument) -> bool:
    """True for `t.size(0)`, `t.shape[0]` or `t.size()[0]`: the leading dim of a flatten-style reshape."""
    if not isinstance(arg, Node):
        return False
    if arg.op == "call_method" and arg.target == "size":
        dim = arg.args[1] if len(arg.args) > 1 else arg.kwargs.get("dim")
        return dim == 0
    if arg.op == "call_function" and arg.target is operator.getitem and arg.args[1] == 0:
        base = arg.args[0]
        if not isinstance(base, Node):
            return False
        shape_attr = base.op == "call_function" and base.target is getattr and base.args[1] == "shape"
        size_call = base.op == "call_method" and base.target == "size" and len(base.args) == 1
        return shape_attr or (size_call and not base.kwargs)
    return False


def _flatten_step(node: Node) -> _Step | None:
    """`x.view(x.size(0), -1)` / `x.reshape(...)` / `torch.reshape(x, (n, -1))`: replayed as flatten(x, 1)."""
    if node.kwargs or not node.args or not isinstance(node.args[0], Node):
        return None
    shape = node.args[1:]
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if len(shape) != 2 or shape[1] != -1 or not _is_batch_size(shape[0]):
        return None
    x = node.args[0]
    return _Step("flatten", [x], lambda graph, env: graph.call_function(torch.flatten, (env[x], 1)))


def _classify(node: Node, modules: dict[str, nn.Module], path_modules: dict[str, nn.Module]) -> _Step | None:
    """The replay step for an elementwise-whitelisted node, None for a node where the walk must stop.

    Copies of the path modules (inplace switched off) are added to `path_modules` under their qualnames.
    """
    if node.op == "call_module":
        module = modules[node.target]  # type: ignore[index]
        split = _split_tensor_arg(node)
        if split is None or not isinstance(split[0], Node) or _has_node((split[1], split[2])):
            return None
        if type(module) in _PASS_MODULES:
            return _pass_through(_PASS_MODULES[type(module)], split[0])
        if type(module) not in _MODULE_OPS or getattr(module, "return_indices", False):
            return None
        if node.target not in path_modules:
            clone = copy.deepcopy(module)
            if hasattr(clone, "inplace"):
                clone.inplace = False  # the path must never overwrite the caller's sampled tensors
            path_modules[node.target] = clone.eval()  # type: ignore[index]
        op = _MODULE_OPS[type(module)]
        return _create(node, op, "call_module", node.target, node.args, dict(node.kwargs))

    if node.op == "call_function":
        target = node.target
        if target in _UNARY_FUNCS:
            split = _split_tensor_arg(node)
            if split is None or not isinstance(split[0], Node) or _has_node((split[1], split[2])):
                return None
            op, fn = _UNARY_FUNCS[target]  # type: ignore[index]
            args, kwargs = list(node.args), dict(node.kwargs)
            pos = _INDICES_POS.get(target)  # type: ignore[arg-type]
            if kwargs.get("return_indices") or (pos is not None and len(args) > pos and args[pos]):
                return None
            if "inplace" in kwargs:
                kwargs["inplace"] = False
            pos = _INPLACE_POS.get(target)  # type: ignore[arg-type]
            if pos is not None and len(args) > pos:
                args[pos] = False
            return _create(node, op, "call_function", fn, tuple(args), kwargs)
        if target is F.dropout:
            split = _split_tensor_arg(node)
            training = node.kwargs.get("training", node.args[2] if len(node.args) > 2 else True)
            if split is None or not isinstance(split[0], Node) or training is not False:
                return None
            return _pass_through("dropout", split[0])
        if target in _ADD_FUNCS:
            if len(node.args) != 2 or _has_node(node.kwargs) or "out" in node.kwargs:
                return None
            return _create(node, "add", "call_function", _ADD_FUNCS[target], node.args, dict(node.kwargs))  # type: ignore[index]
        if target in _CAT_FUNCS:
            tensors = node.args[0] if node.args else node.kwargs.get("tensors")
            rest = (node.args[1:], {k: v for k, v in node.kwargs.items() if k != "tensors"})
            if not isinstance(tensors, (list, tuple)) or _has_node(rest) or "out" in node.kwargs:
                return None
            if not all(isinstance(t, Node) for t in tensors):
                return None
            return _create(node, "cat", "call_function", torch.cat, node.args, dict(node.kwargs))
        if target is torch.reshape:
            return _flatten_step(node)
        return None

    if node.op == "call_method":
        name = str(node.target)
        if name in ("view", "reshape"):
            return _flatten_step(node)
        if name in _UNARY_METHODS:
            if not node.args or not isinstance(node.args[0], Node) or _has_node((node.args[1:], node.kwargs)):
                return None
            op, method = _UNARY_METHODS[name]
            return _create(node, op, "call_method", method, node.args, dict(node.kwargs))
        if name in _ADD_METHODS:
            if len(node.args) != 2 or _has_node(node.kwargs):
                return None
            return _create(node, "add", "call_method", _ADD_METHODS[name], node.args, dict(node.kwargs))
    return None


# --- layers and their sources ------------------------------------------------------------------------------


def _layer_kind(module: nn.Module) -> LayerKind | None:
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Conv2d):
        if module.groups == 1:
            return "conv"
        return "depthwise" if module.groups == module.in_channels else "grouped"
    return None


def bn_user(node: Node, modules: dict[str, nn.Module]) -> Node | None:
    """The BatchNorm call that is the only consumer of a conv/linear node's output, if any.

    Conv2d pairs with BatchNorm2d (or SyncBatchNorm), Linear with BatchNorm1d, and the feature counts must
    match: that is the pattern BN folding can absorb into the layer's weights.
    """
    if len(node.users) != 1:
        return None
    user = next(iter(node.users))
    if user.op != "call_module" or not user.args or user.args[0] is not node or len(user.args) > 1:
        return None
    layer, bn = modules[node.target], modules[user.target]  # type: ignore[index]
    if isinstance(layer, nn.Conv2d):
        ok = isinstance(bn, (nn.BatchNorm2d, nn.SyncBatchNorm)) and bn.num_features == layer.out_channels
    elif isinstance(layer, nn.Linear):
        ok = isinstance(bn, nn.BatchNorm1d) and bn.num_features == layer.out_features
    else:
        ok = False
    return user if ok else None


def _layer_input(node: Node) -> Node:
    arg = node.args[0] if node.args else node.kwargs.get("input")
    if not isinstance(arg, Node):
        raise UserError(f"layer {node.target} is called without a tensor input")
    return arg


def _source(node: Node, modules: dict[str, nn.Module]) -> Source:
    if node.op == "placeholder":
        return Source("input", str(node.target), None)
    if node.op == "call_module":
        module = modules[node.target]  # type: ignore[index]
        if isinstance(module, BN_TYPES):
            return Source("bn", str(node.target), module.num_features)
        if isinstance(module, nn.Conv2d):
            return Source("layer", str(node.target), module.out_channels)
        if isinstance(module, nn.Linear):
            return Source("layer", str(node.target), module.out_features)
        return Source("layer", str(node.target), None)
    return Source("layer", node.name, None)


def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return f"_{ident}" if not ident or ident[0].isdigit() else ident


def _per_sample_shape(node: Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(shape[1:]) if shape is not None else None


def _walk(start: Node, step: Callable[[Node], _Step | None], order: dict[Node, int]) -> tuple[list[Node], list[Node]]:
    """Walk back from a layer's input through whitelisted ops: (path nodes, source nodes), in graph order."""
    seen: set[Node] = set()
    path_nodes: list[Node] = []
    source_nodes: list[Node] = []
    stack = [start]
    while stack:
        n = stack.pop()
        if n in seen:  # residual streams reach the same node along several routes
            continue
        seen.add(n)
        s = step(n)
        if s is None:
            source_nodes.append(n)
        else:
            path_nodes.append(n)
            stack.extend(s.inputs)
    return sorted(path_nodes, key=order.__getitem__), sorted(source_nodes, key=order.__getitem__)


def _build_path(
    start: Node,
    path_nodes: list[Node],
    source_nodes: list[Node],
    sources: list[Source],
    steps: dict[Node, _Step | None],
    path_modules: dict[str, nn.Module],
) -> fx.GraphModule:
    """GraphModule with one argument per source (in order) that replays the path and returns `start`."""
    graph = fx.Graph()
    env: Env = {n: graph.placeholder(_identifier(src.name)) for n, src in zip(source_nodes, sources, strict=True)}
    for n in path_nodes:
        env[n] = steps[n].emit(graph, env)  # type: ignore[union-attr]
    graph.output(env[start])
    used = {str(n.target) for n in graph.nodes if n.op == "call_module"}
    return fx.GraphModule({k: path_modules[k] for k in used}, graph, "LayerInputPath").eval()


def check_weights(model: nn.Module) -> None:
    """A parameter or buffer with NaN/inf values is a broken checkpoint: say which, before anything runs on it."""
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t)).sum())
            raise UserError(f"{name} holds {bad} non-finite value(s) (NaN/inf) of {t.numel()}: the weights are broken")


def _check_supported(name: str, module: nn.Module) -> None:
    """A module with a weight matrix that is not a Conv2d / Linear would silently stay uncompressed: refuse it."""
    matrices = [p for p in module.parameters(recurse=False) if p.ndim >= 2]
    if matrices:
        raise UserError(f"layer {name}: {type(module).__name__} has a weight matrix that lwcompress cannot compress "
                        "(only Conv2d and Linear layers are) and would leave in float")  # fmt: skip


def analyze(model: nn.Module, example_input: torch.Tensor | None = None) -> list[LayerInfo]:
    """Compressible layers of `model` in execution order, each with the elementwise path feeding it.

    The model is traced as in eval mode (its own train/eval flags are left as they were). With
    `example_input` (a batch), one forward pass fills in per-sample shapes of every source and layer input.
    Raises UserError for a model fx cannot trace, with non-finite weights, with weight matrices in other modules
    than Conv2d / Linear, or where a conv/linear module is called more than once.
    """
    check_weights(model)
    gm = trace(model)
    if example_input is not None:
        with eval_mode(gm), torch.no_grad():
            ShapeProp(gm).propagate(example_input)

    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)
    for n in nodes:
        if n.op == "call_module" and _layer_kind(modules[n.target]) is None:
            _check_supported(str(n.target), modules[n.target])
    order = {n: i for i, n in enumerate(nodes)}
    layer_nodes = [n for n in nodes if n.op == "call_module" and _layer_kind(modules[n.target]) is not None]
    calls = Counter(n.target for n in layer_nodes)
    shared = [str(t) for t, c in calls.items() if c > 1]
    if shared:
        raise UserError(
            f"layer {shared[0]} is called {calls[shared[0]]} times; layer-wise compression needs "
            "every conv/linear module to be called once"
        )

    steps: dict[Node, _Step | None] = {}
    path_modules: dict[str, nn.Module] = {}

    def step(n: Node) -> _Step | None:
        if n not in steps:
            steps[n] = _classify(n, modules, path_modules)
        return steps[n]

    layers: list[LayerInfo] = []
    for index, node in enumerate(layer_nodes):
        start = _layer_input(node)
        path_nodes, source_nodes = _walk(start, step, order)
        sources = [_source(n, modules) for n in source_nodes]
        if example_input is not None:
            shapes = [_per_sample_shape(n) for n in source_nodes]
            sources = [
                replace(src, shape=shape, channels=shape[0] if shape else src.channels)
                for src, shape in zip(sources, shapes, strict=True)
            ]
        path = _build_path(start, path_nodes, source_nodes, sources, steps, path_modules)

        module = modules[node.target]  # type: ignore[index]
        bn = bn_user(node, modules)
        out = bn if bn is not None else node
        act = step(next(iter(out.users))) if len(out.users) == 1 else None
        layers.append(
            LayerInfo(
                name=str(node.target),
                kind=_layer_kind(module),  # type: ignore[arg-type]
                bn=str(bn.target) if bn is not None else None,
                sources=sources,
                ops=[steps[n].op for n in path_nodes],  # type: ignore[union-attr]
                path=path,
                is_first=index == 0,
                is_last=index == len(layer_nodes) - 1,
                input_shape=_per_sample_shape(start) if example_input is not None else None,
                activation=act.op if act is not None and act.op in ("relu", "relu6") else None,
            )
        )
    return _infer_input_channels(layers, modules)


def _infer_input_channels(layers: list[LayerInfo], modules: dict[str, nn.Module]) -> list[LayerInfo]:
    """Fill the channel count of "input" sources from a conv that sees the input through channel-preserving
    ops only (typically the stem), so generators know it without an example input."""
    known: dict[str, int] = {}
    for info in layers:
        module = modules[info.name]
        if (
            isinstance(module, nn.Conv2d)
            and info.sources
            and all(s.kind == "input" for s in info.sources)
            and len({s.name for s in info.sources}) == 1
            and set(info.ops) <= _CHANNEL_PRESERVING
        ):
            known.setdefault(info.sources[0].name, module.in_channels)
    for info in layers:
        info.sources = [
            replace(s, channels=known[s.name]) if s.kind == "input" and s.channels is None and s.name in known else s
            for s in info.sources
        ]
    return layers
