"""How well cached generated images match their network's BatchNorm statistics: the BN-statistics loss
(`generate.bn_statistics_loss`, ZeroQ's distances) of the first 64 images of every image set in the image cache that
has the model's input shape, newest first, with the images' std. GENIE's sets have std 1.000 exactly (its last layer
normalizes every batch); per-pixel distilled sets do not. Sets made for another network of the same input shape
are listed too (resnet20's on mobilenetv2_small: their loss is far higher); the cache does not name the network.
Round 4 (round4_tuning.md §3) read the torchvision
mobilenet_v2's sets this way after its benchmark runs.

    python experiments/probes/image_bn_loss.py --model mobilenet_v2_fmnist --experiment torchvision
    python experiments/probes/image_bn_loss.py --model mobilenetv2_small
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lwcompress import io
from lwcompress.cli import load_config
from lwcompress.data import DATA
from lwcompress.generate import bn_statistics_loss
from lwcompress.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--experiment", help="the experiment config the images were made under (input shape)")
    parser.add_argument("--cache", type=Path, default=Path("data/cache/images"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    job = load_config([f"model={args.model}"] + ([f"experiment={args.experiment}"] if args.experiment else []))
    dm = DATA.get(job.data.name)(job.data)  # its input shape, without reading data files
    shape = (dm.in_channels, dm.image_size, dm.image_size)
    model = build_model(job.model, getattr(dm, "num_classes", 10), dm.in_channels)[0].eval()
    for path in sorted(args.cache.glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True):
        images = io.torch_load(path)["images"]
        if tuple(images.shape[1:]) != shape:
            continue
        with torch.no_grad():
            loss = float(bn_statistics_loss(model, images[:64]))
        print(f"{path.name}: BN loss {loss:.1f}, std {float(images.std()):.3f}", flush=True)


if __name__ == "__main__":
    main()
