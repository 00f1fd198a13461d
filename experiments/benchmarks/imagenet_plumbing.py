"""The ImageNet-shaped plumbing check: torchvision resnet18 (random weights: no hub here) compressed layer-wise from
an ImageNet-layout image folder (generated: class patterns + noise), over N processes, then evaluated on its val
folder. It checks the paths a cluster run takes (ImageFolder data, 3-channel 224-style model, ranks, segments,
devices), not accuracy.

    python experiments/benchmarks/imagenet_plumbing.py --accelerator cpu --devices 2 --image-size 64   # here, 2 cores
    python experiments/benchmarks/imagenet_plumbing.py --accelerator gpu --devices 2 --image-size 224     # a GPU box
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from lwcompress.data.synthetic import class_patterns, sample_images


def write_folder(root: Path, classes: int, per_class: dict[str, int], size: int) -> None:
    """<root>/{train,val}/<class>/<i>.png, as ImageNet is laid out."""
    import torch

    patterns = class_patterns(classes, 3, size, seed=0)
    for split, n in per_class.items():
        images, labels = sample_images(patterns, n * classes, size, torch.Generator().manual_seed(len(split)))
        for i, (x, y) in enumerate(zip(images, labels, strict=True)):
            path = root / split / f"class{int(y):03d}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((x.permute(1, 2, 0) * 255).byte().numpy()).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", default="logs/imagenet_plumbing")
    args = parser.parse_args()
    out = Path(args.out) / f"{args.accelerator}{args.devices}_{args.image_size}px"
    root = Path(args.out) / f"images_{args.image_size}px"
    if not (root / "val").is_dir():
        write_folder(root, 10, {"train": 40, "val": 10}, args.image_size)
    threads = max(1, 2 // args.devices) if args.accelerator == "cpu" else 4
    command = [
        str(Path(sys.executable).parent / "lwcompress"), "model=resnet18", "model.weights=null", "data=imagenet",
        f"data.root={root}", f"data.image_size={args.image_size}", f"data.resize_size={args.image_size}",
        "data.val_size=20", "data.num_workers=2", "data.eval_batch_size=50", f"trainer={args.accelerator}",
        f"trainer.devices={args.devices}", f"threads={threads}", "trainer.enable_progress_bar=false",
        "compressor.wbits=4", "compressor.abits=8", f"layerwise.steps={args.steps}", "generator.num_images=64",
        f"layerwise.segments={args.devices}", f"hydra.run.dir={out}",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    s = json.loads((out / "summary.json").read_text())
    layers = [p for p in (out / "layers").glob("*.json") if p.stem != "FINGERPRINT"]
    ranks = sorted({json.loads(p.read_text())["rank"] for p in layers})
    print(f"resnet18 {args.image_size}px, {args.accelerator} x {args.devices}: layers run by ranks {ranks}, "
          f"world_size {s['world_size']}, compress {s['compress_wall_s']:.1f} s, whole job {wall:.1f} s, "
          f"top1 {s['top1']:.2f} (FP {s['fp_top1']:.2f}, RTN {s['rtn_top1']:.2f}; random weights)")  # fmt: skip


if __name__ == "__main__":
    main()
