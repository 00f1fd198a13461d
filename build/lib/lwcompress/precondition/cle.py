"""Cross-layer equalization and high-bias absorption (Nagel et al. 2019, "Data-Free Quantization", DFQ).

When a BN channel of layer1 feeds layer2 through nothing or a ReLU, its output can be divided by s > 0 and
layer2's weights that read it multiplied by s without changing the function (ReLU is positively homogeneous).
Choosing s per channel to equalize the two layers' folded weight ranges evens out the input channels inside each
row of layer2 (what its per-output-channel weight grids see; per-tensor grids also gain across layer1's output
channels), and it rescales the activation channels a per-tensor input grid must cover.

Everything is done on the unfolded model, by rescaling BatchNorm's gamma and beta: the BN statistics that
data-free ranges, the BN-Gaussian generator and BN folding read afterwards describe the equalized network.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass

import torch
from torch import fx, nn

from lwcompress.graph import analyze
from lwcompress.graph.fold import fold_scale
from lwcompress.graph.trace import trace
from lwcompress.precondition.channels import by_input_channel, contract_input_channels, scale_input_channels

# High-bias absorption moves into layer2 what a BN channel almost surely outputs under the BN-Gaussian model:
# beta - 3|gamma| (DFQ's choice).
HIGH_BIAS_SIGMAS = 3.0
# analyze's ops that are the identity in eval mode (nn.Identity, dropout).
PASS_OPS = ("identity", "dropout")
# Chains converge linearly (about x0.75 per sweep on MobileNetV2): 50 sweeps reach float precision, and a
# sweep stops the loop early once no channel's scale moves by more than this (relative).
CONVERGED = 1e-6


@dataclass(frozen=True)
class Pair:
    """layer1 -> bn -> [activation] -> layer2, where nothing but layer2 reads the BN output.

    Qualified module names. `activation` is None, "relu" or "relu6" (only with relu6_to_relu: its module
    `act_module` is then swapped for a ReLU); `bn2` is the BN folded into layer2, if any.
    """

    layer1: str
    bn: str
    layer2: str
    bn2: str | None
    activation: str | None
    act_module: str | None


def _chain(bn_node: fx.Node, layer_node: fx.Node) -> list[fx.Node] | None:
    """The nodes between the BN and layer2, if the BN's output reaches layer2 through them and nothing else
    reads it along the way; None where a residual branch or any other consumer also reads it."""
    chain, node = [], bn_node
    while len(node.users) == 1:
        node = next(iter(node.users))
        if node is layer_node:
            return chain
        chain.append(node)
    return None


def find_pairs(model: nn.Module, example_input: torch.Tensor, relu6_to_relu: bool = False) -> list[Pair]:
    """The layer pairs `equalize` rescales, in execution order.

    layer2's input must come from one BN (of layer1, with running statistics and affine parameters) through
    nothing or a ReLU, or a ReLU6 module called once when `relu6_to_relu` (identities and dropout aside).
    """
    layers = analyze(model, example_input)
    gm = trace(model)
    modules = dict(gm.named_modules())
    calls = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")
    nodes = {n.target: n for n in gm.graph.nodes if n.op == "call_module"}
    first_of = {info.bn: info for info in layers if info.bn is not None}
    allowed = [[], ["relu"]] + ([["relu6"]] if relu6_to_relu else [])

    def has_stats(name: str | None) -> bool:
        return name is not None and modules[name].running_var is not None

    pairs = []
    for info in layers:
        ops = [op for op in info.ops if op not in PASS_OPS]
        if len(info.sources) != 1 or info.sources[0].kind != "bn" or ops not in allowed:
            continue
        bn_name = info.sources[0].name
        bn = modules[bn_name]
        if bn_name not in first_of or calls[bn_name] != 1 or not bn.affine or not has_stats(bn_name):
            continue
        chain = _chain(nodes[bn_name], nodes[info.name])
        if chain is None:
            continue
        act_module = None
        if ops == ["relu6"]:
            # Only a module can be swapped for a ReLU, and only one that no other place of the model calls.
            relu6 = [n for n in chain if n.op == "call_module" and isinstance(modules[n.target], nn.ReLU6)]
            if len(relu6) != 1 or calls[relu6[0].target] != 1:
                continue
            act_module = str(relu6[0].target)
        pairs.append(
            Pair(
                layer1=first_of[bn_name].name,
                bn=bn_name,
                layer2=info.name,
                bn2=info.bn if has_stats(info.bn) else None,
                activation=ops[0] if ops else None,
                act_module=act_module,
            )
        )
    return pairs


def _groups(layer: nn.Module) -> int:
    return getattr(layer, "groups", 1)


def folded_ranges(model: nn.Module, pair: Pair) -> tuple[torch.Tensor, torch.Tensor]:
    """(r1, r2) per channel of the pair: max |w| of layer1's folded output channel i, and of layer2's folded
    weights that read channel i; the ranges per-channel weight quantization sees after BN folding."""
    layer1, layer2 = model.get_submodule(pair.layer1), model.get_submodule(pair.layer2)
    r1 = layer1.weight.detach().double().flatten(1).abs().amax(1) * fold_scale(model.get_submodule(pair.bn)).abs()
    w2 = layer2.weight.detach().double()
    if pair.bn2 is not None:
        w2 = w2 * fold_scale(model.get_submodule(pair.bn2)).view(-1, *([1] * (w2.dim() - 1)))
    r2 = by_input_channel(w2, _groups(layer2)).abs().amax(1)
    return r1, r2


def _equalize_pair(model: nn.Module, pair: Pair) -> float:
    """Rescale one pair so that r1 / s == r2 * s per channel; returns the largest |log s| applied."""
    r1, r2 = folded_ranges(model, pair)
    # A dead channel (all-zero weights on either side) has nothing to balance.
    ok = (r1 > 0) & (r2 > 0)
    s = torch.where(ok, torch.sqrt(r1 / torch.where(ok, r2, 1.0)), 1.0)
    bn, layer2 = model.get_submodule(pair.bn), model.get_submodule(pair.layer2)
    # BN output channel i / s_i commutes with ReLU; layer2 reading it with weights * s_i undoes the division.
    bn.weight.copy_((bn.weight.double() / s).to(bn.weight.dtype))
    bn.bias.copy_((bn.bias.double() / s).to(bn.bias.dtype))
    w2 = layer2.weight
    w2.copy_(scale_input_channels(w2.double(), _groups(layer2), s).to(w2.dtype))
    return float(s.log().abs().max()) if s.numel() else 0.0


def _absorb_high_bias(model: nn.Module, pair: Pair) -> None:
    """Move c = max(0, beta - 3|gamma|) from a BN channel feeding a ReLU into what layer2 adds after it.

    relu(y - c) + c == relu(y) for y >= c, so layer2 loses W2 c (summed over its kernel) where every tap
    reads a real position; the rest of layer2 (its BN's running mean, else its bias) adds it back. Exact in
    the interior of the feature map while pre-activations stay >= c; at borders zero padding now stands for
    -c, so outputs there move by the missing taps' share.
    """
    bn, layer2 = model.get_submodule(pair.bn), model.get_submodule(pair.layer2)
    beta = bn.bias.double()
    c = (beta - HIGH_BIAS_SIGMAS * bn.weight.double().abs()).clamp_min(0)
    if not bool((c > 0).any()):
        return
    bn.bias.copy_((beta - c).to(bn.bias.dtype))
    lost = contract_input_channels(layer2.weight.double(), _groups(layer2), c)
    if pair.bn2 is not None:
        # BN2 subtracts its running mean from layer2's output: lowering the mean by what was lost restores it.
        bn2 = model.get_submodule(pair.bn2)
        bn2.running_mean.copy_((bn2.running_mean.double() - lost).to(bn2.running_mean.dtype))
    elif layer2.bias is not None:
        layer2.bias.copy_((layer2.bias.double() + lost).to(layer2.bias.dtype))
    else:
        w = layer2.weight
        layer2.bias = nn.Parameter(lost.to(device=w.device, dtype=w.dtype), requires_grad=w.requires_grad)


@torch.no_grad()
def equalize(
    model: nn.Module,
    example_input: torch.Tensor,
    relu6_to_relu: bool = False,
    absorb_high_bias: bool = True,
    iterations: int = 50,
) -> nn.Module:
    """A copy of the unfolded `model` with cross-layer equalization (and high-bias absorption) applied.

    Equalization is function-preserving (up to float rounding). It is iterated because a chain such as
    MobileNet's expand -> depthwise -> project rescales the depthwise layer from both sides; it stops early
    once converged (`iterations` caps the sweeps). `relu6_to_relu` swaps the ReLU6 modules between paired
    layers for ReLU so that those pairs can be equalized too: that changes the model wherever such an
    activation exceeds 6, and only there. High-bias absorption (pairs with a ReLU between) is exact only
    while pre-activations stay >= the absorbed amount and away from zero-padded borders, see
    `_absorb_high_bias`; it lets the ReLU outputs' grid start nearer their typical values. `model` itself
    is not modified.
    """
    model = copy.deepcopy(model)
    pairs = find_pairs(model, example_input, relu6_to_relu)
    for pair in pairs:
        if pair.activation == "relu6":
            old = model.get_submodule(pair.act_module)
            model.set_submodule(pair.act_module, nn.ReLU(inplace=old.inplace))
    for _ in range(iterations):
        moved = max((_equalize_pair(model, p) for p in pairs), default=0.0)
        if moved < CONVERGED:
            break
    if absorb_high_bias:
        for pair in pairs:
            if pair.activation is not None:
                _absorb_high_bias(model, pair)
    return model
