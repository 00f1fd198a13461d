"""Seconds per distillation step (one forward and backward pass of the whole network over a chunk of images, the
BN-statistics loss, one Adam step) for the committed 28x28 checkpoints, on `--threads` threads: the unit of
generator=distilled's cost (256 images x 200 steps = 800 steps of 64).

python experiments/probes/distill_speed.py --threads 1
python experiments/probes/distill_speed.py --torchvision resnet18 --sizes 224 112 --chunk 16   # random weights
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision
from probe_data import load

from lwcompress.generate.distill import Inversion, distill_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--torchvision", help="a torchvision model with random weights instead (10 classes)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224], help="--torchvision: input sizes")
    args = parser.parse_args()
    if args.torchvision:
        torch.set_num_threads(args.threads)
        model = getattr(torchvision.models, args.torchvision)(num_classes=10).eval()
        cases = [(f"{args.torchvision} {size}px", model, (3, size, size)) for size in args.sizes]
    else:
        cases = [(name, load(name, args.threads)[0], (1, 28, 28)) for name in ("mobilenetv2_small", "resnet20")]
    for name, model, shape in cases:
        images = torch.randn(args.chunk, *shape, generator=torch.Generator().manual_seed(0))
        distill_images(model, images, args.chunk, Inversion(steps=2))  # warm-up
        start = time.perf_counter()
        distill_images(model, images, args.chunk, Inversion(steps=args.steps))
        per_step = (time.perf_counter() - start) / args.steps
        print(f"{name}: {1000 * per_step:.0f} ms per step of {args.chunk} images, {args.threads} thread(s)")


if __name__ == "__main__":
    main()
