"""What should a reconstruction unit be? AdaRound in a plain PyTorch loop on real or propagated inputs with three
targets: each layer alone (`--unit layer`), each residual block as a whole (`--unit block`, BRECQ-style: the
block's CompressedLayers trained together to reproduce the FP block's output), and optionally inputs taken from the
already-quantized network (`--inputs quant`, sequential) instead of the FP one. Prints validation top-1.

python experiments/probes/unit_check.py --model mobilenetv2_small --wbits 3 --abits none --unit block
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch
from torch import nn

import lwcompress
from lwcompress.api import compress
from lwcompress.compress import CompressedLayer, CompressorConfig
from lwcompress.compress.modules import rectified_sigmoid
from lwcompress.data import DataConfig, build_data
from lwcompress.generate import capture_inputs
from lwcompress.graph.fold import fold_bn
from lwcompress.layerwise.rounding import AdaRound, trained_rounding
from lwcompress.layerwise.sequential import channel_ratio, into_domain
from lwcompress.models import ModelConfig, build_model


def units(model: nn.Module, unit: str) -> list[str]:
    """Module names to reconstruct, in forward order: each CompressedLayer, or the highest module holding
    CompressedLayers that sits in an nn.Sequential (a residual block) and the CompressedLayers outside any such
    block."""
    quants = [n for n, m in model.named_modules() if isinstance(m, CompressedLayer)]
    if unit == "layer":
        return quants
    chosen: list[str] = []
    for name, m in model.named_modules():
        if any(name.startswith(c + ".") for c in chosen) or not name:
            continue
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        inside = [q for q in quants if q == name or q.startswith(name + ".")]
        if inside and (isinstance(parent, nn.Sequential) or isinstance(m, CompressedLayer)):
            chosen.append(name)
    return chosen


def sequential_synthetic(model: nn.Module, learned: nn.Module, images: torch.Tensor, args, g) -> None:
    """Sequential reconstruction on propagated data: BN statistics replaced by those of the noise batch, so the
    FP network in eval mode *is* the propagated generator; each CompressedLayer is moved into that domain (its grid
    scaled per channel like its folded weight), trained on the outputs of the already-quantized synthetic-domain
    network, and its integer codes copied back."""
    syn = copy.deepcopy(model)
    for m in syn.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
            m.train()
    with torch.no_grad():
        for c in images.split(64):
            syn(c)
    syn.eval()
    fp_syn = fold_bn(syn)
    q_syn = copy.deepcopy(fp_syn)
    quants = {n: m for n, m in learned.named_modules() if isinstance(m, CompressedLayer)}
    r_of = {}
    for k, (name, q) in enumerate(quants.items()):
        r_of[name] = channel_ratio(fp_syn.get_submodule(name).weight, q.layer.weight)
        # The image-fed layer keeps a float input: noise images lie outside the pixel grid.
        q_syn.set_submodule(name, into_domain(q, fp_syn.get_submodule(name), r_of[name], float_input=k == 0))
    targets_in = capture_inputs(fp_syn, list(quants), images, batch_stat_bn=False)
    for k, name in enumerate(quants):
        if k == 0 and not args.train_first:
            continue
        qs, ref = q_syn.get_submodule(name), fp_syn.get_submodule(name)
        if args.upstream_float_act:  # upstream weight errors only: activations of earlier layers stay float
            saved = {n: q.abits for n, q in q_syn.named_modules() if isinstance(q, CompressedLayer)}
            for q in q_syn.modules():
                if isinstance(q, CompressedLayer):
                    q.abits = None
        inp = capture_inputs(q_syn, [name], images, batch_stat_bn=False)[name]
        if args.upstream_float_act:
            for n, bits in saved.items():
                q_syn.get_submodule(n).abits = bits
        with torch.no_grad():
            target = torch.cat([ref(c) for c in targets_in[name].split(64)])
        with torch.no_grad():
            before = float((qs(inp) - target).pow(2).mean() / target.var())
        train_unit([qs], qs, inp, target, args, g)
        with torch.no_grad():
            after = float((qs(inp) - target).pow(2).mean() / target.var())
        quants[name].load_codes(qs.codes())
        if args.debug:
            r = r_of[name]
            print(f"{name}: synthetic error {before:.4f} -> {after:.4f}, r {float(r.min()):.2f}..{float(r.max()):.2f}")


def train_unit(qs: list[CompressedLayer], unit: nn.Module, inp: torch.Tensor, targets: torch.Tensor, args, g) -> None:
    """AdaRound on the CompressedLayers `qs` inside `unit` so that unit(inp) matches targets; hardens them."""
    for q in qs:
        q.make_trainable(trained_rounding(AdaRound), False, False, False)
    opt = torch.optim.Adam([q.rounding.alpha for q in qs], lr=3e-2)
    n_alpha = sum(q.rounding.alpha.numel() for q in qs)
    for t in range(args.steps):
        idx = torch.randint(0, len(inp), (32,), generator=g)
        target = targets[idx]
        loss = (unit(inp[idx]) - target).pow(2).mean() / target.var()
        progress = t / args.steps
        if progress >= 0.2:
            beta = 2 + 9 * (1 + math.cos(math.pi * (progress - 0.2) / 0.8))
            soft = [rectified_sigmoid(q.rounding.alpha) for q in qs]
            loss = loss + 0.01 * sum((1 - (2 * h - 1).abs().pow(beta)).sum() for h in soft) / n_alpha
        opt.zero_grad()
        loss.backward()
        opt.step()
    for q in qs:
        q.harden()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv2_small")
    parser.add_argument("--wbits", type=int, default=3)
    parser.add_argument("--abits", default="none")
    parser.add_argument("--unit", default="block", choices=["layer", "block"])
    parser.add_argument("--inputs", default="fp", choices=["fp", "quant"])
    parser.add_argument("--data", default="real", choices=["real", "propagated"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--train-first", action="store_true", help="also train the image-fed unit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--upstream-float-act", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    dm = build_data(DataConfig())
    dm.setup("fit")
    x, y = (torch.stack(t) for t in zip(*[dm.val[i] for i in range(5000)], strict=True))
    y = torch.as_tensor(y)
    weights = Path(lwcompress.__file__).parent / "checkpoints" / "fashion_mnist" / f"{args.model}.pt"
    model, _ = build_model(ModelConfig(args.model, weights=str(weights)), 10, 1)
    model.eval()

    @torch.no_grad()
    def top1(m: nn.Module) -> float:
        return float(torch.cat([m(x[i : i + 500]).argmax(1) == y[i : i + 500] for i in range(0, len(x), 500)])
                     .float().mean() * 100)  # fmt: skip

    abits = None if args.abits == "none" else int(args.abits)
    rtn = compress(model, CompressorConfig("rtn", wbits=args.wbits, abits=abits), dm.normalization, (1, 28, 28))
    # The folded GraphModule has no block-level forward; put its CompressedLayers (folded weights) into a copy of the
    # original nested model instead, BatchNorms replaced by identities.
    folded = fold_bn(model).eval()
    learned, fp_nested = copy.deepcopy(model), copy.deepcopy(model)
    kept = dict(rtn.model.named_modules())
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            learned.set_submodule(name, nn.Identity())
            fp_nested.set_submodule(name, nn.Identity())
        elif isinstance(kept.get(name), CompressedLayer):
            learned.set_submodule(name, copy.deepcopy(kept[name]))
            fp_nested.set_submodule(name, copy.deepcopy(folded.get_submodule(name)))
    folded = fp_nested
    images = dm.train_images(args.images) if args.data == "real" else torch.randn(args.images, 1, 28, 28)
    names = units(learned, args.unit)
    fp_in = capture_inputs(model, names, images, batch_stat_bn=args.data == "propagated")
    # Targets: the FP unit on FP inputs (sequential mode feeds the quantized network's inputs to the same target).
    with torch.no_grad():
        targets = {n: torch.cat([folded.get_submodule(n)(c) for c in fp_in[n].split(64)]) for n in names}
    g = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    if args.data == "propagated" and args.inputs == "quant":
        learned = copy.deepcopy(rtn.model)
        sequential_synthetic(model, learned, images, args, g)
        names = []
    for k, name in enumerate(names):
        unit = learned.get_submodule(name)
        qs = [m for m in unit.modules() if isinstance(m, CompressedLayer)]
        if k == 0 and not args.train_first:
            continue
        if args.inputs == "quant":
            with torch.no_grad():
                inp = capture_inputs(learned, [name], images, batch_stat_bn=False)[name]
        else:
            inp = fp_in[name]
        train_unit(qs, unit, inp, targets[name], args, g)
    wall = time.perf_counter() - start
    print(
        f"{args.model} W{args.wbits}A{args.abits} unit={args.unit} inputs={args.inputs} data={args.data} "
        f"({len(names)} units): fp {top1(model):.2f}  rtn {top1(rtn.model):.2f}  learned {top1(learned):.2f}  "
        f"{wall:.0f} s"
    )


if __name__ == "__main__":
    main()
