"""Which data-free measurement tells a good first learned block from a bad one? Round 13 found the seed spread of
mobilenetv2_small W3A3 on clipped distilled images sitting in its first learned block (features.3: the same run
scores 85.26 ... 88.62 with another seed's features.3). For saved compressed models this prints, next to each one's
validation top-1: KL(FP || compressed) of the outputs on real validation images and on clipped images distilled
from held-out noise; the same with only the compressed network's first learned block (features.0 to features.3,
the FP network after it); and that block's relative output error on uniform images at black, mid-grey and white
(Fashion-MNIST's background is black: half of its pixels, a quarter of its 5x5 windows).

    python experiments/probes/first_block_probe.py NAME=JOB_DIR ...   (job dirs holding compressed.pt)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from probe_data import config_model, config_normalization, load, top1
from torch import nn

from lwcompress.export_run import load_run
from lwcompress.generate import Inversion, distill_images, pixel_range
from lwcompress.layerwise.guard import output_error

MODEL = "mobilenetv2_small"
BLOCK, LAST = "features.3", "features.3.block.3"  # the first learned block; its last compressed layer (no residual)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=JOB_DIR of finished runs that saved compressed.pt")
    parser.add_argument("--real", type=int, default=1000, help="validation images for the KL columns")
    parser.add_argument("--distilled", type=int, default=128, help="clipped images distilled from held-out noise")
    args = parser.parse_args()
    fp, _, x_val, y_val = load(MODEL, threads=1)
    fp.eval()
    shape = config_model(MODEL)[1]
    lo, hi = pixel_range(config_normalization(MODEL, None))
    noise = torch.randn(args.distilled, *shape, generator=torch.Generator().manual_seed(7))  # no run's seed
    clipped = distill_images(fp, noise, chunk=64, inversion=Inversion(clip=True), pixel_range=(lo, hi))
    sets = {"real": x_val[: args.real], "clipped distilled": clipped}
    flats = {name: (lo + (hi - lo) * level).view(1, -1, 1, 1).expand(1, *shape) for name, level in
             (("black", 0.0), ("grey", 0.5), ("white", 1.0))}  # fmt: skip
    print(
        "run | val top-1 | KL real / clipped distilled | first block only: KL real / clipped distilled | "
        "first block's error on uniform black / grey / white"
    )
    with torch.no_grad():  # the FP network's side, once for every run
        targets = [fp(x) for x in sets.values()]
    blocks = [_block_output(fp, BLOCK, x) for x in flats.values()]
    for name, path in (r.split("=", 1) for r in args.runs):
        q = load_run(Path(path)).compressed.model.eval()
        whole = [_kl(q, x, t) for x, t in zip(sets.values(), targets, strict=True)]
        first = [_kl(_first_block_only(fp, q), x, t) for x, t in zip(sets.values(), targets, strict=True)]
        flat = [_block_error(q, x, b) for x, b in zip(flats.values(), blocks, strict=True)]
        print(
            f"{name} | {top1(q, x_val, y_val):.2f} | {' / '.join(f'{v:.4f}' for v in whole)} | "
            f"{' / '.join(f'{v:.4f}' for v in first)} | {' / '.join(f'{v:.3f}' for v in flat)}",
            flush=True,
        )


@torch.no_grad()
def _kl(model: nn.Module, x: torch.Tensor, fp_logits: torch.Tensor) -> float:
    """KL(FP || model) of the outputs on x, mean over the images (the guard's measure)."""
    return output_error(model(x), fp_logits, "output_kl")


def _block_output(model: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    seen = []
    hook = model.get_submodule(name).register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        model(x)
    hook.remove()
    return seen[0]


def _first_block_only(fp: nn.Module, q: nn.Module) -> nn.Module:
    """The FP network whose first learned block's output is the compressed network's (on the same images)."""

    class Spliced(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = _block_output(q, LAST, x)
            hook = fp.get_submodule(BLOCK).register_forward_hook(lambda m, i, o: out)
            try:
                return fp(x)
            finally:
                hook.remove()

    return Spliced()


def _block_error(q: nn.Module, x: torch.Tensor, fp_block: torch.Tensor) -> float:
    """||q - fp||^2 / ||fp||^2 of the first learned block's output at the image's centre (no border effects);
    `fp_block`: the FP block's output on x."""
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    ours, theirs = _block_output(q, LAST, x)[..., h, w], fp_block[..., h, w]
    return float((ours - theirs).pow(2).sum() / theirs.pow(2).sum().clamp_min(1e-12))


if __name__ == "__main__":
    main()
