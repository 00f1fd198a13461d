"""Does the synthetic data see how much rounding broke? For each benchmark cell: the default's round-to-nearest start
against the FP network on the validation images (the truth a run never sees: top-1 drop, top-1 agreement, KL
divergence of the FP softmax to the rounded one) and on the default's synthetic images (the same seed's cached
distilled images, as the run would make them, seen as the guard sees them: image-fed layers take them unquantized;
top-1 agreement, KL, relative logit MSE). If a synthetic measure ranks the
cells as the validation drop does, a run can tell a saturated cell (rounding lost nothing, learning can only fit
its images) before it learns anything.

    python experiments/probes/rtn_saturation.py --model resnet18_fmnist --experiment torchvision \
        --cells w8a8 w4a4 w3a8 w4a4_all w2a4
    python experiments/probes/rtn_saturation.py --model mobilenetv2_small --experiment round2
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch
from guard_criteria import in_domain
from probe_data import top1
from torch import nn

from lwcompress.api import Runtime, compress
from lwcompress.cli import load_config
from lwcompress.generate import GenerationContext, LayerData, pixel_range
from lwcompress.graph import analyze
from lwcompress.jobs import model_and_data

ROOT = Path(__file__).resolve().parents[2]


@torch.no_grad()
def compare(net: nn.Module, fp: nn.Module, images: torch.Tensor, batch: int = 250) -> dict[str, float]:
    """Top-1 agreement %, KL(FP || net) (mean and median over images), relative logit MSE of `net` against `fp` on
    `images`, and the FP softmax's mean entropy (how close to a decision the images sit)."""
    out = torch.cat([net(images[i : i + batch]) for i in range(0, len(images), batch)])
    ref = torch.cat([fp(images[i : i + batch]) for i in range(0, len(images), batch)])
    log_p, log_q = ref.log_softmax(1), out.log_softmax(1)
    kl = (log_p.exp() * (log_p - log_q)).sum(1)
    return {
        "agree": float((out.argmax(1) == ref.argmax(1)).float().mean() * 100),
        "kl": float(kl.mean()),
        "kl_median": float(kl.median()),
        "mse": float((out - ref).pow(2).mean() / ref.var()),
        "entropy": float(-(log_p.exp() * log_p).sum(1).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--experiment", default="round2")
    parser.add_argument("--cells", nargs="+", default=["w8a8", "w4a4", "w3a8", "w4a4_all", "w3a4", "w3a3", "w2a8",
                                                       "w2a4"])  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic-only", action="store_true", help="skip the validation columns (other seeds)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{args.model} ({args.experiment}), the default's RTN start vs FP; seed {args.seed}'s distilled images")
    print("| cell | val FP | val RTN | drop | val agree % | val KL | syn agree % | syn KL | syn mse | syn KL median | "
          "FP entropy | syn KL / W8A8's | syn KL, weights only |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    reference = None  # the synthetic KL of W8A8 round-to-nearest on the same images: how fragile they are
    cells = ["w8a8"] + [c for c in args.cells if c != "w8a8"]
    jobs = {cell: load_config([f"experiment={args.experiment}", f"model={args.model}", f"+benchmark/cell={cell}",
                               "+benchmark/method=default", f"seed={args.seed}", "eval_split=val"])
            for cell in cells}  # fmt: skip
    # The model, its images and the validation split are the same for every cell: only the compressor differs.
    job = jobs["w8a8"]
    dm, model, _ = model_and_data(job.model, job.data)
    model.eval()
    shape = (dm.in_channels, dm.image_size, dm.image_size)
    kept = ROOT / job.paths.data_dir / "cache" / "images"  # the runs' image cache, from any working dir
    data = LayerData(model, analyze(model, torch.zeros(1, *shape)), job.generator,
                     GenerationContext(shape, job.layerwise.spatial_size, cache_dir=kept,
                                       pixel_range=pixel_range(dm.normalization)))  # fmt: skip
    images, _ = data.images()
    x = y = fp = None
    if not args.synthetic_only:
        dm.setup("fit")
        x, y = (torch.stack([torch.as_tensor(v) for v in t])
                for t in zip(*[dm.val[i] for i in range(len(dm.val))], strict=True))  # fmt: skip
        fp = top1(model, x, y)
    for cell, job in jobs.items():
        start = replace(job.compressor, name=job.compressor.closed_form)
        rtn = compress(model, start, dm.normalization, shape, job.preconditioner, job.generator, job.layerwise,
                       runtime=Runtime(image_cache_dir=kept))  # fmt: skip
        s = compare(*in_domain(model, rtn, data), images)
        reference = reference or s["kl"]
        if cell not in args.cells:
            continue
        # the same weights with every activation in float: the part of the loss a weight rounding can win back
        float_acts = replace(start, abits=None, first_layer_abits=None, last_layer_abits=None)
        weights_only = compress(model, float_acts, dm.normalization, shape, job.preconditioner, job.generator,
                                job.layerwise, runtime=Runtime(image_cache_dir=kept))  # fmt: skip
        kl_w = compare(*in_domain(model, weights_only, data), images)["kl"]
        val = "| – " * 5
        if x is not None:
            q, v = top1(rtn.model, x, y), compare(rtn.model.eval(), model, x)
            val = f"| {fp:.2f} | {q:.2f} | {fp - q:+.2f} | {v['agree']:.2f} | {v['kl']:.4f} "
        print(f"| {cell} {val}| {s['agree']:.1f} | {s['kl']:.4f} | {s['mse']:.4f} | {s['kl_median']:.4f} | "
              f"{s['entropy']:.3f} | {s['kl'] / reference:.1f} | {kl_w:.4f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
