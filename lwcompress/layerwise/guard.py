"""The network-level guard: keep a learned layer only where the synthetic network says it helps.

Each layer run checks its own held-out error (`keep_better`), but layers that each fit their own inputs better can
still make the network worse (measured: mobilenetv2_small W4A4 ended 1.3 points below its round-to-nearest start).
The guard looks at the whole network instead, without data: the compressed layers are put into the generator's
domain network (codes carried across the BN folding, as in sequential runs) and the relative error of its logits
against the FP domain network is measured on held-out synthetic images. `guard=model` keeps either every learned
layer or none; `guard=layer` walks the layers in order and puts each back to round-to-nearest where that lowers
the logit error (one forward pass per layer).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from lwcompress.compress.modules import CompressedLayer
from lwcompress.layerwise.sequential import channel_ratio, into_domain


def domain_twin(
    q: CompressedLayer, domain_layer: nn.Module, reference: nn.Module, float_input: bool
) -> CompressedLayer:
    """`q` (a hardened deployed layer) in the domain folding: the same integer codes on the grid scaled per
    output channel, and the same change of bias relative to the FP `reference`."""
    d = into_domain(q, domain_layer, channel_ratio(domain_layer.weight, reference.weight), float_input)
    d.load_codes(q.codes())
    if d.layer.bias is not None and q.layer.bias is not None:
        with torch.no_grad():
            d.layer.bias.add_(q.layer.bias - reference.bias)
    return d


@torch.no_grad()
def logit_error(net: nn.Module, target: torch.Tensor, images: torch.Tensor, chunk: int) -> float:
    """Relative squared error of `net`'s outputs on `images` against `target` (`output_error`)."""
    out = torch.cat([net(images[i : i + chunk]) for i in range(0, len(images), chunk)])
    return output_error(out, target)


def output_error(out: torch.Tensor, target: torch.Tensor, measure: str = "output_mse") -> float:
    """The output error by `measure`: "output_mse" (squared error over the target's variance) or "output_kl"
    (KL(softmax(target) || softmax(out)), mean over samples; a sample's KL is at least 0, where float32 rounding
    leaves nearly equal outputs a few 1e-9 below, which would rank such a layer below an exact one)."""
    if measure == "output_kl":
        log_p, log_q = target.log_softmax(-1), out.log_softmax(-1)
        return float((log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0).mean())
    return float((out - target).pow(2).mean() / target.var().clamp_min(1e-12))


@torch.no_grad()
def guard(
    names: list[str], learned: list[CompressedLayer], start: list[CompressedLayer], references: list[nn.Module],
    domain: nn.Module, images: torch.Tensor, float_inputs: set[str], mode: str, chunk: int = 64,
) -> tuple[list[bool], dict[str, float]]:  # fmt: skip
    """Which layers to put back to their start (`start`: round-to-nearest) by the domain's logit error, and the
    errors seen: {"start", "learned", "kept"}. `domain` is the folded FP domain network, `images` its inputs."""
    target = torch.cat([domain(images[i : i + chunk]) for i in range(0, len(images), chunk)])
    net = copy.deepcopy(domain).eval()
    twins = {}
    for name, q, s, ref in zip(names, learned, start, references, strict=True):
        layer, fed = domain.get_submodule(name), name in float_inputs
        twins[name] = (domain_twin(q, layer, ref, fed), domain_twin(s, layer, ref, fed))

    def error(back: list[bool]) -> float:
        for name, b in zip(names, back, strict=True):
            net.set_submodule(name, twins[name][int(b)])
        return logit_error(net, target, images, chunk)

    errors = {"start": error([True] * len(names)), "learned": error([False] * len(names))}
    back = [errors["start"] < errors["learned"]] * len(names)
    if mode == "layer":
        back, best = [False] * len(names), errors["learned"]
        for i in range(len(names)):
            trial = back[:i] + [True] + back[i + 1 :]
            e = error(trial)
            if e < best:
                back, best = trial, e
    errors["kept"] = error(back)
    return back, errors
