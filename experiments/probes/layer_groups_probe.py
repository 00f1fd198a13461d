"""Where do the learned layers hurt? Compress once with round-to-nearest and once layer-wise, then measure
validation top-1 (never the test set) with one group of layers at a time put back to round-to-nearest, and with
only one group learned. Groups: depthwise convs, 1x1 convs, other convs/linears, and the network's halves.
First it prints every layer's domain gap (generate.domain_gaps, the signal of layerwise.max_gap); --gaps-only
stops there (seconds).

python experiments/probes/layer_groups_probe.py --model mobilenetv2_small --bits 4 4 [--variant "key=value ..."] \
    [--gaps-only]
"""

from __future__ import annotations

import argparse
import copy

import torch
from probe_data import load, top1
from solver_probe import parse
from torch import nn

from lwcompress.api import compress
from lwcompress.compress import CompressorConfig
from lwcompress.generate import GenerationContext, domain_gaps, generator_config
from lwcompress.graph import analyze
from lwcompress.layerwise import LayerwiseConfig


def kind(module: nn.Module) -> str:
    layer = module.layer
    if isinstance(layer, nn.Conv2d) and layer.groups > 1:
        return "depthwise"
    if isinstance(layer, nn.Conv2d) and layer.kernel_size == (1, 1):
        return "1x1"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv2_small")
    parser.add_argument("--bits", nargs=2, type=int, default=[4, 4])
    parser.add_argument("--variant", default="")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gaps-only", action="store_true")
    args = parser.parse_args()
    model, dm, x, y = load(args.model, args.threads)
    comp, lw, gen = parse(args.variant)
    generator = generator_config(**{"name": "distilled", "seed": args.seed, **gen})
    layers = analyze(model.eval(), torch.zeros(1, 1, 28, 28))
    gaps = domain_gaps(model, layers, generator, GenerationContext((1, 28, 28), 8))
    print(f"domain gaps ({generator.name}):", "  ".join(f"{n} {g:.3f}" for n, g in gaps.items()), flush=True)
    if args.gaps_only:
        return
    base = dict(wbits=args.bits[0], abits=args.bits[1])
    rtn = compress(model, CompressorConfig("rtn", **base), dm.normalization, (1, 28, 28))
    out = compress(
        model, CompressorConfig("quant", **{**base, **comp}), dm.normalization, (1, 28, 28), generator=generator,
        layerwise=LayerwiseConfig(**{"seed": args.seed, **lw}),
    )  # fmt: skip
    names = list(out.compressed_layers())
    kinds = {n: kind(out.model.get_submodule(n)) for n in names}
    half = len(names) // 2
    groups = {k: [n for n in names if kinds[n] == k] for k in sorted(set(kinds.values()))}
    groups |= {"first half": names[:half], "second half": names[half:]}
    print(f"{args.model} W{args.bits[0]}A{args.bits[1]} {args.variant or 'default'} seed {args.seed}: "
          f"rtn {top1(rtn.model, x, y):.2f}  learned {top1(out.model, x, y):.2f}", flush=True)  # fmt: skip

    def mixed(learned: list[str]) -> float:
        net = copy.deepcopy(rtn.model)
        for n in learned:
            net.set_submodule(n, copy.deepcopy(out.model.get_submodule(n)))
        return top1(net, x, y)

    for group, members in groups.items():
        rest = [n for n in names if n not in members]
        print(f"  {group:12s} ({len(members):2d} layers): only it learned {mixed(members):6.2f}   "
              f"it put back {mixed(rest):6.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
