"""`compressor.integer_graph`: every 8-bit tensor between layers quantized once, residual adds included, so that
onnxruntime runs the quantized layers and the adds as integer kernels (QLinearConv / QGemm / QLinearAdd) and the
simulation computes what those kernels compute.

Without it each layer quantizes its own input on its own grid and everything else stays float: a residual add sums a
float shortcut and a float conv output, so the conv that feeds it and the add cannot be integer kernels (measured:
8 of resnet18's 20 convs fused, experiments/results/latency_224.md). The pass, on the finished compressed graph:
- a tensor several 8-bit layers read (a block's input, read by its first conv and its downsample conv) is quantized
  on the first reader's grid, which the others' input grids are set to;
- each term of a residual add is read quantized: on its readers' grid where 8-bit layers read it too (the
  shortcut), else, where it is a layer's own output (a block's last conv, a downsample conv), on an 8-bit grid over
  the interval the BN-statistics input model gives that output (`TensorQuant`), as layer inputs get theirs;
- the add's result needs nothing new: its readers' grid quantizes it (through a ReLU, which a zero point of 0
  makes free for onnxruntime);
- an 8-bit-input layer's output that the head's global pooling reads (through its activation) is quantized on an
  8-bit grid over that interval, activated.
A term with neither (no BN statistics, readers at other widths) leaves its add float, and so does a layer next to the
add (computing a term, reading the result) whose input is not 8-bit: onnxruntime has no integer kernel that saturates
at a narrower grid, so quantizing the terms there would cost accuracy and gain no kernel. Inputs below 8 bit are left
as they are.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from lwcompress.compress.modules import CompressedLayer
from lwcompress.compress.quantizer import affine_params, fake_quant, qrange

BITS = 8  # what onnxruntime's integer kernels carry between layers
_ADDS = (operator.add, torch.add)
_ACTIVATION_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh)
_ACTIVATION_FUNCTIONS = (F.relu, F.relu6, torch.relu)


class TensorQuant(nn.Module):
    """A tensor fake-quantized on a per-tensor affine unsigned grid: one QuantizeLinear -> DequantizeLinear pair."""

    def __init__(self, scale: torch.Tensor, zero_point: torch.Tensor, bits: int = BITS) -> None:
        super().__init__()
        self.bits = bits
        self.register_buffer("scale", scale.detach().clone().reshape(()))
        self.register_buffer("zero_point", zero_point.detach().clone().reshape(()))

    @classmethod
    def over(cls, lo: float, hi: float, bits: int = BITS) -> TensorQuant:
        """The grid over [lo, hi]."""
        return cls(*affine_params(torch.tensor(lo), torch.tensor(hi), bits, False), bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fake_quant(x, self.scale, self.zero_point, *qrange(self.bits, False))

    def extra_repr(self) -> str:
        return f"A{self.bits}, scale {float(self.scale):.4g}, zero point {int(self.zero_point)}"


@dataclass
class IntegerGraph:
    """What `integer_graph` changed (summary.json's `integer_graph`)."""

    tied: list[str]  # layers whose input grid was set to another reader's of the same tensor
    adds: int  # residual adds whose terms are now quantized
    float_adds: list[str]  # adds left float (a term with no 8-bit grid, or next to a layer without 8-bit input)
    heads: list[str]  # layers whose (activated) output the global pooling now reads quantized


def _is_add(node: fx.Node) -> bool:
    """A sum of two different tensors (a residual add)."""
    tensors = [a for a in node.args if isinstance(a, fx.Node)]
    function = node.op == "call_function" and node.target in _ADDS
    is_add = function or (node.op == "call_method" and node.target == "add")
    return is_add and len(tensors) == 2 and tensors[0] is not tensors[1] and not node.kwargs


def _is_global_pool(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        m = modules[node.target]
        return isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1))
    return node.op == "call_function" and node.target is F.adaptive_avg_pool2d and node.args[1:] in ((1,), ((1, 1),))


def _activation(node: fx.Node, modules: dict[str, nn.Module]) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The elementwise activation `node` applies (monotone: an interval's ends map to its ends), or None."""
    if node.op == "call_module" and isinstance(modules[node.target], _ACTIVATION_MODULES):
        return modules[node.target]
    if node.op == "call_function" and node.target in _ACTIVATION_FUNCTIONS:
        return node.target
    return None


def _insert(model: fx.GraphModule, reader: fx.Node, tensor: fx.Node, quant: TensorQuant, name: str) -> None:
    """`reader` reads `tensor` through `quant`, a new submodule `name`."""
    model.add_submodule(name, quant)
    with model.graph.inserting_before(reader):
        reader.replace_input_with(tensor, model.graph.call_module(name, (tensor,)))


def integer_graph(model: fx.GraphModule, output_ranges: dict[str, tuple[float, float] | None]) -> IntegerGraph:
    """Rewrite the compressed, BN-folded `model` in place as the module docstring says; `output_ranges`: per layer,
    the interval of its (folded) output in the BN-statistics model, None where it has none."""
    modules = dict(model.named_modules())

    def readers(node: fx.Node) -> list[CompressedLayer]:
        return [modules[u.target] for u in node.users if u.op == "call_module"
                and isinstance(modules[u.target], CompressedLayer) and modules[u.target].abits == BITS]  # fmt: skip

    tied = []
    for node in model.graph.nodes:
        first, *others = readers(node) or [None]
        for q in others:
            with torch.no_grad():
                q.a_scale.copy_(first.a_scale)
                q.a_zero_point.copy_(first.a_zero_point)
            tied.append(next(n for n, m in modules.items() if m is q))

    def term(node: fx.Node) -> TensorQuant | None:
        shared = readers(node)
        if shared:
            return TensorQuant(shared[0].a_scale, shared[0].a_zero_point)
        layer = modules.get(node.target) if node.op == "call_module" else None
        span = output_ranges.get(str(node.target)) if isinstance(layer, CompressedLayer) else None
        return TensorQuant.over(*span) if span is not None else None

    def near_layers(node: fx.Node) -> list[CompressedLayer]:
        """The layers that compute the add's terms or read its result (through an activation)."""
        around = [a for a in node.args if isinstance(a, fx.Node)] + list(node.users)
        around += [u for a in node.users if _activation(a, modules) is not None for u in a.users]
        return [modules[n.target] for n in around if n.op == "call_module"
                and isinstance(modules[n.target], CompressedLayer)]  # fmt: skip

    adds, float_adds = 0, []
    for node in [n for n in model.graph.nodes if _is_add(n)]:
        terms = [a for a in node.args if isinstance(a, fx.Node)]
        quants = [term(t) for t in terms]
        # next to a layer with a narrower (or float) input no integer kernel forms: the terms would lose for nothing
        if any(q is None for q in quants) or any(m.abits != BITS for m in near_layers(node)):
            float_adds.append(node.name)
            continue
        for i, (t, q) in enumerate(zip(terms, quants, strict=True)):
            _insert(model, node, t, q, f"{node.name}_term{i}_quant")
        adds += 1

    heads, modules = [], dict(model.named_modules())  # with the terms' quantizers
    for node in [n for n in model.graph.nodes if _is_global_pool(n, modules)]:
        src = node.args[0]
        if not isinstance(src, fx.Node) or readers(src):
            continue
        act = _activation(src, modules)
        producer = src if act is None else src.args[0]
        layer = modules.get(producer.target) if producer.op == "call_module" else None
        kernel = isinstance(layer, CompressedLayer) and layer.abits == BITS  # else no integer kernel gains by it
        span = output_ranges.get(str(producer.target)) if kernel else None
        if span is None:
            continue
        ends = torch.tensor(span) if act is None else act(torch.tensor(span))
        _insert(model, node, src, TensorQuant.over(*ends.tolist()), f"{node.name}_input_quant")
        heads.append(str(producer.target))
    model.graph.lint()
    model.recompile()
    return IntegerGraph(tied, adds, float_adds, heads)
