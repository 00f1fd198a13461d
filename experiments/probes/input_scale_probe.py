"""How far the layer runs move each layer's input step size (compressor.learn_input_scale=true) from the BN-sigma
rule's, per layer, next to validation top-1 (never the test set):

python experiments/probes/input_scale_probe.py --model mobilenetv2_small --bits 4 4 [--variant "lr_scaled=0.003"] \
    [--clamp widen]

`--clamp widen` (`narrow`) lets a step only grow (shrink) from its start: after every optimizer step of the layer
runs it is clamped back, to tell which direction of the learned moves helps.
"""

from __future__ import annotations

import argparse

import torch
from probe_data import load, top1
from solver_probe import parse

from lwcompress.api import compress
from lwcompress.compress import CompressedLayer, CompressorConfig
from lwcompress.generate import generator_config
from lwcompress.layerwise import LayerwiseConfig
from lwcompress.layerwise.run import ReconstructionModule


def clamp_input_steps(direction: str) -> None:
    """Make every layer run's input step only grow ("widen") or only shrink ("narrow") from where it started."""
    step = ReconstructionModule.training_step

    def clamped(self: ReconstructionModule, batch: object, batch_idx: int) -> None:
        if batch_idx == 0:
            self.start_steps = [t.quant.a_scale.detach().clone() for t in self.tasks]
        step(self, batch, batch_idx)
        with torch.no_grad():
            for t, s in zip(self.tasks, self.start_steps, strict=True):
                bound = {"min": s} if direction == "widen" else {"max": s}
                t.quant.a_scale.copy_(torch.clamp(t.quant.a_scale, **bound))

    ReconstructionModule.training_step = clamped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv2_small")
    parser.add_argument("--bits", nargs=2, type=int, default=[4, 4])
    parser.add_argument("--variant", default="", help="key=value ... as in solver_probe.py")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clamp", choices=["widen", "narrow"], help="let the steps only grow / only shrink")
    args = parser.parse_args()
    if args.clamp:
        clamp_input_steps(args.clamp)
    model, dm, x, y = load(args.model, args.threads)
    comp, lw, gen = parse(args.variant)
    bits = dict(wbits=args.bits[0], abits=args.bits[1])
    base = {**bits, "learn_input_scale": True, **comp}
    rtn = compress(model, CompressorConfig("rtn", **bits), dm.normalization, (1, 28, 28))
    gen_cfg, lw_cfg = (
        generator_config(**{"name": "distilled", "seed": args.seed, **gen}),
        LayerwiseConfig(seed=args.seed, **lw),
    )
    out = compress(model, CompressorConfig("quant", **base), dm.normalization, (1, 28, 28), generator=gen_cfg,
                   layerwise=lw_cfg)  # fmt: skip
    print(
        f"{args.model} W{args.bits[0]}A{args.bits[1]} {args.variant} clamp {args.clamp}: "
        f"rtn {top1(rtn.model, x, y):.2f}  learned input scales {top1(out.model, x, y):.2f}"
    )
    start = {n: m for n, m in rtn.model.named_modules() if isinstance(m, CompressedLayer)}
    for name, m in out.model.named_modules():
        if isinstance(m, CompressedLayer) and m.abits is not None:
            s0 = float(start[name].a_scale)
            print(f"  {name:32s} A{m.abits} step {s0:.4f} -> {float(m.a_scale):.4f} (x{float(m.a_scale) / s0:.2f})")


if __name__ == "__main__":
    main()
