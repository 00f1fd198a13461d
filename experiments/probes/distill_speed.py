"""Seconds per distillation step (one forward and backward pass of the whole network over a chunk of images, the
BN-statistics loss, one Adam step) for the committed 28x28 checkpoints, on `--threads` threads: the unit of
generator=distilled's cost (256 images x 200 steps = 800 steps of 64); with --genie WIDTH, the same step through
generator=genie's network of that width (its images made by the network, swing 1).

python experiments/probes/distill_speed.py --threads 1
python experiments/probes/distill_speed.py --threads 1 --genie 128 64
python experiments/probes/distill_speed.py --torchvision resnet18 --sizes 224 112 --chunk 16   # random weights
python experiments/probes/distill_speed.py --coarse 0.75 --steps 20   # also generator.coarse=0.75's mean step
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import torch
import torchvision
from probe_data import load
from torch import nn

from lwcompress.generate.distill import ImageNetwork, Inversion, distill_images, network_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--torchvision", help="a torchvision model with random weights instead (10 classes)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224], help="--torchvision: input sizes")
    parser.add_argument("--genie", type=int, nargs="*", default=[], help="also genie's step at these network widths")
    parser.add_argument("--coarse", type=float, nargs="*", default=[], help="also the mean step at these coarse shares")
    args = parser.parse_args()
    if args.torchvision:
        torch.set_num_threads(args.threads)
        model = getattr(torchvision.models, args.torchvision)(num_classes=10).eval()
        cases = [(f"{args.torchvision} {size}px", model, (3, size, size)) for size in args.sizes]
    else:
        cases = [(name, load(name, args.threads)[0], (1, 28, 28)) for name in ("mobilenetv2_small", "resnet20")]
    for name, model, shape in cases:
        for source, run in _sources(model, shape, args.chunk, args.genie, args.coarse).items():
            run(2)  # warm-up
            start = time.perf_counter()
            run(args.steps)
            per_step = (time.perf_counter() - start) / args.steps
            print(f"{name} {source}: {1000 * per_step:.0f} ms per step of {args.chunk} images, "
                  f"{args.threads} thread(s)", flush=True)  # fmt: skip


def _sources(
    model: nn.Module, shape: tuple[int, ...], chunk: int, widths: list[int], coarse: list[float]
) -> dict[str, Callable]:  # fmt: skip
    """Per image source, a function of the step count that distills one chunk."""
    images = torch.randn(chunk, *shape, generator=torch.Generator().manual_seed(0))

    def pixels(steps: int, share: float = 0.0) -> torch.Tensor:
        return distill_images(model, images, chunk, Inversion(steps=steps, coarse=share))

    def genie(steps: int, width: int) -> torch.Tensor:
        inv = Inversion(steps=steps, lr=0.01, swing=1)
        return network_images(model, chunk, shape, chunk, network=ImageNetwork(width=width), inversion=inv)

    coarsened = {f"pixels coarse {c}": partial(pixels, share=c) for c in coarse}
    return {"pixels": pixels} | coarsened | {f"genie width {w}": partial(genie, width=w) for w in widths}


if __name__ == "__main__":
    main()
