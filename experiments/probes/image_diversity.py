"""How much images differ from one another as a network's BatchNorms see them, real validation images against one
chunk of images distilled from noise (ZeroQ's batch loss, the default), with `generator.image_spread` and, with
--clip, each also with `generator.clip` (pixels kept inside the normalization's range), and with --backdrop S
clipped images with `generator.backdrop=S` (a flat learned background over that share of each; round 14): per
BatchNorm, the RMS over channels of the std over the images of each image's own channel mean (in running stds),
and the median over channels of the input's kurtosis. Round 13 (round13_tuning.md §1) found distilled images half
as diverse as real ones in mobilenetv2_small's first BatchNorms.

    python experiments/probes/image_diversity.py --model mobilenetv2_small --spreads 0 0.2 --clip

The pixels' quantiles and their share at or beyond the range's ends come first (real Fashion-MNIST images sit
half at black).
"""

from __future__ import annotations

import argparse
import time

import torch
from probe_data import config_model, config_normalization, config_val_images
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from lwcompress.generate import Inversion, distill_images, pixel_range


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--experiment", help="the experiment config (input shape), e.g. torchvision")
    parser.add_argument("--spreads", nargs="+", type=float, default=[0.0, 0.2])
    parser.add_argument("--images", type=int, default=64, help="one chunk of this many images")
    parser.add_argument("--clip", action="store_true", help="also every spread with the pixels clipped")
    parser.add_argument("--backdrop", type=float, nargs="*", default=[], help="also clipped with these backdrops")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, shape = config_model(args.model, args.experiment)
    sets = {"real": config_val_images(args.model, args.experiment, args.images)}
    bounds = pixel_range(config_normalization(args.model, args.experiment))
    noise = torch.randn(args.images, *shape, generator=torch.Generator().manual_seed(0))
    variants = [(s, c, 0.0) for s in args.spreads for c in [False, *[True] * args.clip]]
    for spread, clip, backdrop in variants + [(0.0, True, b) for b in args.backdrop]:
        start, name = time.time(), f"spread {spread:g}{' clip' * clip}{f' backdrop {backdrop:g}' * bool(backdrop)}"
        inv = Inversion(image_spread=spread, clip=clip, backdrop=backdrop)
        sets[name] = distill_images(model, noise, chunk=args.images, inversion=inv, pixel_range=bounds)
        print(f"{name}: distilled in {time.time() - start:.0f} s", flush=True)
    quantiles = torch.tensor([0.01, 0.1, 0.5, 0.9, 0.99])
    for name, images in sets.items():
        q = ", ".join(f"{v:.2f}" for v in torch.quantile(images.flatten()[: 1 << 20], quantiles).tolist())
        black = float((images <= bounds[0].view(1, -1, 1, 1) + 1e-4).float().mean())
        white = float((images >= bounds[1].view(1, -1, 1, 1) - 1e-4).float().mean())
        print(
            f"{name}: pixel quantiles 1/10/50/90/99 % {q}; at or below black {black:.2f}, at or above white {white:.2f}"
        )
    table = {name: _diversity(model, images) for name, images in sets.items()}
    count = len(next(iter(table.values())))
    shown = sorted({*range(min(8, count)), count // 2, count - 1})
    print("BN | " + " | ".join(f"{name}: spread / kurtosis" for name in table))
    for i in shown:
        print(f"{i} | " + " | ".join(f"{rows[i][0]:.2f} / {rows[i][1]:.1f}" for rows in table.values()))


def _diversity(model: nn.Module, images: torch.Tensor) -> list[tuple[float, float]]:
    """Per BatchNorm with spatial inputs, in forward order: (between-image spread, median kurtosis)."""
    rows: list[tuple[float, float]] = []

    def hook(bn: _BatchNorm, args: tuple) -> None:
        x = args[0].float()
        if x.ndim < 4:
            return
        z = (x - bn.running_mean.view(1, -1, 1, 1)) / (bn.running_var + bn.eps).sqrt().view(1, -1, 1, 1)
        spread = z.mean((2, 3)).std(0).pow(2).mean().sqrt()
        flat = z.transpose(0, 1).reshape(z.shape[1], -1)
        centred = (flat - flat.mean(1, keepdim=True)) / flat.std(1, keepdim=True)
        rows.append((float(spread), float(centred.pow(4).mean(1).median())))

    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    hooks = [bn.register_forward_pre_hook(hook) for bn in bns]
    with torch.no_grad():
        model.eval()(images)
    for h in hooks:
        h.remove()
    return rows


if __name__ == "__main__":
    main()
