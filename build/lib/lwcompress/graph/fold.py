"""BatchNorm folding: absorb each conv/linear's BN into the layer's weights (function-preserving in eval)."""

from __future__ import annotations

import copy
from collections import Counter

import torch
from torch import fx, nn

from lwcompress.graph.analyze import bn_user
from lwcompress.graph.trace import trace


def fold_scale(bn: nn.Module) -> torch.Tensor:
    """gamma / sqrt(var + eps) per channel (float64): what folding multiplies each output channel's weights by."""
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(bn.running_var.double())
    return gamma / torch.sqrt(bn.running_var.double() + bn.eps)


def _fold_into(layer: nn.Conv2d | nn.Linear, bn: nn.Module) -> None:
    """Rewrite `layer` in place so that layer(x) == bn(old_layer(x)) with BN's running statistics.

    w' = w * s and b' = (b - mean) * s + beta per output channel, s = gamma / sqrt(var + eps). Computed in
    float64 so the folded weights are as close to the exact product as the layer's dtype allows.
    """
    weight = layer.weight
    with torch.no_grad():
        mean = bn.running_mean.double()
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(mean)
        scale = fold_scale(bn)
        bias = layer.bias.double() if layer.bias is not None else torch.zeros_like(mean)
        new_weight = weight.double() * scale.view(-1, *([1] * (weight.dim() - 1)))
        new_bias = (bias - mean) * scale + beta
        weight.copy_(new_weight.to(weight.dtype))
        if layer.bias is not None:
            layer.bias.copy_(new_bias.to(layer.bias.dtype))
        else:
            layer.bias = nn.Parameter(
                new_bias.to(device=weight.device, dtype=weight.dtype), requires_grad=weight.requires_grad
            )


def fold_bn(model: nn.Module) -> fx.GraphModule:
    """A new eval-mode GraphModule equal to `model` in eval mode, with every foldable BN absorbed.

    A BN is folded when it is the only consumer of a Conv2d (BatchNorm2d) or Linear (BatchNorm1d) output;
    the layer gains a bias, keeps its qualified name, and the BN disappears from the graph. BNs without
    running statistics (they normalize by the batch even in eval) and modules called more than once are left
    alone. `model` itself is not modified.
    """
    gm = trace(copy.deepcopy(model))
    modules = dict(gm.named_modules())
    calls = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], (nn.Conv2d, nn.Linear)):
            continue
        bn_node = bn_user(node, modules)
        if bn_node is None or calls[node.target] > 1 or calls[bn_node.target] > 1:
            continue
        bn = modules[bn_node.target]
        if bn.running_mean is None or bn.running_var is None:
            continue
        _fold_into(modules[node.target], bn)  # type: ignore[arg-type]
        bn_node.replace_all_uses_with(node)
        gm.graph.erase_node(bn_node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm.eval()
