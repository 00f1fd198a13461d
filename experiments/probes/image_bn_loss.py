"""How well cached generated images match their network's BatchNorm statistics: the BN-statistics loss
(`generate.bn_statistics_loss`, ZeroQ's distances) of the first 64 images of every image set in the image cache that
has the model's input shape, newest first, with the images' std. GENIE's sets have std 1.000 exactly (its last layer
normalizes every batch); per-pixel distilled sets do not. Sets made for another network of the same input shape
are listed too (resnet20's on mobilenetv2_small: their loss is far higher); the cache does not name the network.
Round 4 (round4_tuning.md §3) read the torchvision
mobilenet_v2's sets this way after its benchmark runs.

    python experiments/probes/image_bn_loss.py --model mobilenet_v2_fmnist --experiment torchvision
    python experiments/probes/image_bn_loss.py --model mobilenetv2_small

With --thirds, the loss split over the network's BatchNorms in order: the first three, the rest of the first two
thirds, the last third (round5_tuning.md §1: where GENIE's images miss the statistics), and the images' total
variation (DeepInversion's smoothness measure). With --relative, each BatchNorm's term in units of its running std
(`bn_distance=per_bn`'s term), averaged over the first, middle and last third of the BatchNorms, with the largest
and where it is; the first line is then 64 real validation images' own (a batch's sampling noise, the reference;
round10_tuning.md §3). --digests keeps the named sets only.

    python experiments/probes/image_bn_loss.py --model mobilenetv2_small --relative --digests 8c9c8f2b0d583197
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from probe_data import config_model, config_val_images

from lwcompress import io
from lwcompress.generate.distill import BNStatistics
from lwcompress.generate.distill import _total_variation as total_variation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--experiment", help="the experiment config the images were made under (input shape)")
    parser.add_argument("--cache", type=Path, default=Path("data/cache/images"))
    parser.add_argument("--thirds", action="store_true", help="also early / middle / late BN losses, smoothness")
    parser.add_argument("--relative", action="store_true", help="per-BN terms in units of the running std, by third")
    parser.add_argument("--digests", nargs="*", help="only these image sets (cache file stems)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, shape = config_model(args.model, args.experiment)
    if args.relative:
        print(f"real validation images: {_relative(model, config_val_images(args.model, args.experiment, 64))}")
    for path in sorted(args.cache.glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True):
        if args.digests and path.stem not in args.digests:
            continue
        images = io.torch_load(path)["images"]
        if tuple(images.shape[1:]) != shape:
            continue
        if args.relative:
            print(f"{path.name}: {_relative(model, images[:64])}", flush=True)
            continue
        with torch.no_grad(), _PerBN(model) as stats:
            model(images[:64])
        terms = stats.terms
        split = f" (first three {sum(terms[:3]):.1f}, middle {sum(terms[3 : 2 * len(terms) // 3]):.1f}, last third " \
                f"{sum(terms[2 * len(terms) // 3 :]):.1f})" if args.thirds else ""  # fmt: skip
        smooth = f", total variation {float(total_variation(images[:64])):.3f}" if args.thirds else ""
        print(f"{path.name}: BN loss {sum(terms):.1f}{split}, std {float(images.std()):.3f}{smooth}", flush=True)


def _relative(model: torch.nn.Module, images: torch.Tensor) -> str:
    """The per-BN terms of `images` in units of each BN's running std, averaged by thirds of the BatchNorms."""
    with torch.no_grad(), _PerBN(model, distance="per_bn") as stats:
        model(images)
    t = torch.tensor(stats.terms)
    third = len(t) // 3
    return (f"relative early {t[:third].mean():.3f}, middle {t[third : 2 * third].mean():.3f}, late "
            f"{t[2 * third :].mean():.3f}, largest {t.max():.3f} (BN {int(t.argmax())} of {len(t)})")  # fmt: skip


class _PerBN(BNStatistics):
    """BNStatistics that also keeps each BatchNorm's term, in the order the forward reaches them."""

    def __init__(self, model: torch.nn.Module, distance: str = "absolute") -> None:
        super().__init__(model, distance=distance)
        self.terms: list[float] = []

    def _hook(self, bn: torch.nn.Module, args: tuple) -> None:
        before = 0.0 if self.loss is None else float(self.loss)
        super()._hook(bn, args)
        self.terms.append(float(self.loss) - before)


if __name__ == "__main__":
    main()
