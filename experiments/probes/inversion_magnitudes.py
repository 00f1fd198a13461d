"""How far a batch of images is from what every BatchNorm of a committed checkpoint expects (ZeroQ's distance), and how
the network classifies it: noise, real training images, and images distilled with and without DeepInversion's priors.

python experiments/probes/inversion_magnitudes.py --model mobilenetv2_small
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from probe_data import load

from lwcompress.generate import Inversion, distill_images
from lwcompress.generate.distill import BNStatistics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv2_small")
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    model, dm, _, _ = load(args.model, threads=1)
    noise = torch.randn(args.images, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    targets = torch.arange(args.images) % 10
    batches = {"noise": noise, "real": dm.train_images(args.images)}
    settings = {"zeroq": Inversion(), "class+jitter+flip": Inversion(class_weight=1.0, jitter=2, flip=True)}
    for name, inv in settings.items():
        clock = time.perf_counter()
        batches[name] = distill_images(model, noise, chunk=args.images, inversion=inv)
        print(f"{name}: distilled in {time.perf_counter() - clock:.1f} s")
    for name, x in batches.items():
        with torch.no_grad(), BNStatistics(model) as stats:
            logits = model(x)
        hits = float((logits.argmax(1) == targets).float().mean())
        print(f"{name:18s} BN distance {float(stats.loss):7.2f}  cross-entropy to image i's class i mod 10 "
              f"{float(F.cross_entropy(logits, targets)):.2f} ({hits:.0%} classified so)")  # fmt: skip


if __name__ == "__main__":
    main()
