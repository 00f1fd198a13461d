"""How closely compressed models follow their full-precision network on real validation images and on images
distilled from held-out noise (unclipped, as generator=distilled makes them by default, and clipped into the pixel
range): top-1 agreement with the FP network, KL(FP || compressed) of the outputs, and the relative squared error
(||q - fp||^2 / ||fp||^2) of four inverted-residual blocks' projection outputs (mobilenetv2_small; the compressed
block's folded conv against the FP block's BatchNorm). Round 13 (round13_tuning.md §3) read the round-11 data-free
and real-data runs of mobilenetv2_small W3A3 this way: the compressed model's first layer clamps its input to the
pixel range, where a quarter of the unclipped distilled pixels lie below black.

    python experiments/probes/domain_agreement.py NAME=JOB_DIR ...   (job dirs holding compressed.pt)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from probe_data import config_model, config_normalization, config_val_images
from torch import nn

from lwcompress.export_run import load_run
from lwcompress.generate import Inversion, distill_images, pixel_range

MODEL = "mobilenetv2_small"  # the block names below are its own
BLOCKS = [4, 7, 10, 13]  # its features.N inverted residuals: early, the first half's end, late


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=JOB_DIR of finished runs that saved compressed.pt")
    parser.add_argument("--real", type=int, default=1000, help="validation images")
    parser.add_argument("--distilled", type=int, default=128, help="images distilled from held-out noise")
    args = parser.parse_args()
    torch.set_num_threads(1)
    fp, shape = config_model(MODEL)
    runs = {name: load_run(Path(path)).compressed.model.eval() for name, path in (r.split("=", 1) for r in args.runs)}
    bounds = pixel_range(config_normalization(MODEL, None))
    noise = torch.randn(args.distilled, *shape, generator=torch.Generator().manual_seed(7))  # no run's seed
    sets = {
        "real validation": config_val_images(MODEL, None, args.real),
        "distilled, unclipped": distill_images(fp, noise, chunk=64, inversion=Inversion()),
        "distilled, clipped": distill_images(fp, noise, chunk=64, inversion=Inversion(clip=True), pixel_range=bounds),
    }
    print("images | run | top-1 agreement % | KL | block error " + " / ".join(f"features.{b}" for b in BLOCKS))
    for images_name, x in sets.items():
        fp_logits, fp_blocks = _outputs(fp, x, [f"features.{b}.block.7" for b in BLOCKS])
        for name, model in runs.items():
            logits, blocks = _outputs(model, x, [f"features.{b}.block.6" for b in BLOCKS])
            agree = 100 * float((logits.argmax(1) == fp_logits.argmax(1)).float().mean())
            kl = F.kl_div(F.log_softmax(logits, 1), F.log_softmax(fp_logits, 1), log_target=True, reduction="batchmean")
            pairs = zip(blocks, fp_blocks, strict=True)
            errors = " / ".join(f"{float((q - f).pow(2).mean() / f.pow(2).mean()):.3f}" for q, f in pairs)
            print(f"{images_name} | {name} | {agree:.2f} | {float(kl):.4f} | {errors}", flush=True)


def _outputs(model: nn.Module, x: torch.Tensor, names: list[str]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(the model's logits on x, the outputs of the named modules, in order)."""
    modules, seen = dict(model.named_modules()), {}
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o)) for n in names]
    with torch.no_grad():
        logits = model.eval()(x)
    for h in hooks:
        h.remove()
    return logits, [seen[n] for n in names]


if __name__ == "__main__":
    main()
