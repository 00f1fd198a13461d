"""The BN-statistics loss along one chunk's distillation (64 images, seed 0) of a committed checkpoint, every 25
steps, and the final images' loss in eval mode (`generate.bn_statistics_loss`, no swing): does a setting converge?
Sources: `pixels:STEPS[:LR]` (generator=distilled's per-pixel images, Adam at LR, default 0.25),
`genie:STEPS[:LR]` (generator=genie's network, swing 1, its weights at LR, default 0.01),
`refine:STEPS:LR` (genie's 100-step images, then STEPS per-pixel steps at LR: generator.refine_steps).

python experiments/probes/distill_trace.py --model mobilenet_v2_fmnist --experiment torchvision --threads 2 \
    genie:100 pixels:200 genie:400 refine:50:0.05 refine:100:0.05 refine:100:0.25 refine:50:0.01
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from probe_data import config_model

from lwcompress.generate import distill
from lwcompress.generate.distill import ImageNetwork, Inversion, bn_statistics_loss, distill_images, network_images


class _Traced(distill.BNStatistics):
    """BNStatistics that appends every step's loss to `losses`."""

    losses: list[float] = []

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        _Traced.losses.append(float(self.loss.detach()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--experiment", help="the experiment config (input shape), e.g. torchvision")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("sources", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, shape = config_model(args.model, args.experiment)
    distill.BNStatistics = _Traced  # the distillation loop builds its loss through the module's name
    genie = Inversion(steps=100, lr=0.01, swing=1)
    base: list[torch.Tensor] = []  # genie's 100-step images, made once for every refine source

    def refine(steps: int, lr: float) -> torch.Tensor:
        if not base:
            base.append(network_images(model, 64, shape, 64, network=ImageNetwork(), inversion=genie))
        return distill_images(model, base[0], 64, Inversion(steps=steps, lr=lr))

    noise = torch.randn(64, *shape, generator=torch.Generator().manual_seed(0))
    makers: dict[str, Callable[..., torch.Tensor]] = {
        "pixels": lambda steps, lr=0.25: distill_images(model, noise, 64, Inversion(steps=int(steps), lr=float(lr))),
        "genie": lambda steps, lr=0.01: network_images(
            model, 64, shape, 64, network=ImageNetwork(), inversion=Inversion(steps=int(steps), lr=float(lr), swing=1)
        ),
        "refine": lambda steps, lr: refine(int(steps), float(lr)),
    }
    for source in args.sources:
        kind, *params = source.split(":")
        if kind == "refine" and not base:
            refine(0, 0.0)  # the 100 genie steps, outside the timing and trace of the refinement
        _Traced.losses.clear()
        start = time.perf_counter()
        images = makers[kind](*params)
        wall = time.perf_counter() - start
        losses = _Traced.losses
        points = " ".join(f"{i + 1}:{v:.1f}" for i, v in enumerate(losses) if i == 0 or (i + 1) % 25 == 0)
        with torch.no_grad():
            final = float(bn_statistics_loss(model, images))
        print(f"{source}: {wall:.0f} s, final images {final:.1f} | {points}", flush=True)


if __name__ == "__main__":
    main()
