"""Which data-free criterion tells when learned layers hurt? Compress a checkpoint with RTN and with a layer-wise
solver, then compare the two networks by validation top-1 (the truth; never used by a run) and by data-free
criteria on synthetic images: the relative logit MSE, the KL divergence from the FP softmax and the top-1
agreement with the FP network, each on the propagated domain (fresh noise through the batch-statistics network)
and on distilled images through the deployed network (both as the guard sees them: image-fed layers take their
synthetic input unquantized). A criterion agrees when it prefers the network that
validation prefers.

python experiments/probes/guard_criteria.py --model mobilenetv2_small --bits 4 4 --rounding gptq
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from probe_data import load, top1
from torch import nn

from lwcompress.api import CompressedModel, compress
from lwcompress.compress import CompressorConfig
from lwcompress.generate import GenerationContext, LayerData, generator_config, pixel_range
from lwcompress.graph import analyze, fold_bn
from lwcompress.layerwise import LayerwiseConfig
from lwcompress.layerwise.guard import domain_twin


@torch.no_grad()
def criteria(net: nn.Module, fp: nn.Module, images: torch.Tensor) -> dict[str, float]:
    out, ref = net(images), fp(images)
    return {
        "mse": float((out - ref).pow(2).mean() / ref.var()),
        "kl": float(F.kl_div(out.log_softmax(1), ref.log_softmax(1), log_target=True, reduction="batchmean")),
        "agree": float((out.argmax(1) == ref.argmax(1)).float().mean() * 100),
    }


def in_domain(model: nn.Module, compressed: CompressedModel, data: LayerData) -> tuple[nn.Module, nn.Module]:
    """(the compressed network in the generator's domain, the FP domain network)."""
    domain, _ = data.domain()
    domain = fold_bn(domain).eval()
    net = fold_bn(domain).eval()
    deployed = fold_bn(model)
    for r in compressed.layers:
        q = compressed.model.get_submodule(r.name)
        net.set_submodule(r.name, domain_twin(q, domain.get_submodule(r.name), deployed.get_submodule(r.name),
                                              r.name in data.float_inputs))  # fmt: skip
    return net, domain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv2_small")
    parser.add_argument("--bits", nargs=2, type=int, default=[4, 4])
    parser.add_argument("--rounding", default="gptq")
    parser.add_argument("--distilled", type=int, default=128, help="distilled images for the deployed-network check")
    args = parser.parse_args()
    model, dm, x, y = load(args.model, 1)
    example = torch.zeros(1, 1, 28, 28)
    bits = dict(wbits=args.bits[0], abits=args.bits[1])
    nets = {
        "rtn": compress(model, CompressorConfig("rtn", **bits), dm.normalization, (1, 28, 28)),
        args.rounding: compress(
            model,
            CompressorConfig(name="quant", rounding=args.rounding, **bits),
            dm.normalization,
            (1, 28, 28),
            layerwise=LayerwiseConfig(),
        ),  # fmt: skip
    }
    cache: dict = {}
    propagated = LayerData(
        model, analyze(model, example), generator_config("propagated"), GenerationContext((1, 28, 28), 8)
    )
    bounds = pixel_range(dm.normalization)
    distilled = LayerData(model, analyze(model, example), generator_config("distilled", num_images=args.distilled),
                          GenerationContext((1, 28, 28), 8, cache=cache, pixel_range=bounds))  # fmt: skip
    noise = propagated.guard_images(128)
    images, _ = distilled.images()
    print(f"{args.model} W{args.bits[0]}A{args.bits[1]}, {args.rounding} vs RTN (validation top-1 is the truth)")
    print("| network | val top-1 | propagated mse | kl | agree % | distilled mse | kl | agree % |")
    print("|---|---|---|---|---|---|---|---|")
    for name, c in nets.items():
        net, domain = in_domain(model, c, propagated)
        p = criteria(net, domain, noise)
        d = criteria(*in_domain(model, c, distilled), images)
        print(f"| {name} | {top1(c.model, x, y):.2f} | {p['mse']:.4f} | {p['kl']:.4f} | {p['agree']:.1f} | "
              f"{d['mse']:.4f} | {d['kl']:.4f} | {d['agree']:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
