"""A cross-check of the layer-wise quantizer outside the framework: independent AdaRound per layer in a plain
PyTorch loop on whole feature maps of real training images (no Lightning, no crops, no keep-better safeguard),
weight-only, image-fed first layer left at round-to-nearest. Prints validation top-1 of FP, RTN and the result.

python experiments/plain_adaround.py --model mobilenetv2_small --wbits 3
"""

from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path

import torch

import lwcompress
from lwcompress.api import compress
from lwcompress.compress import QuantConfig
from lwcompress.data import DataConfig, build_data
from lwcompress.generate import capture_inputs
from lwcompress.models import ModelConfig, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv2_small")
    parser.add_argument("--wbits", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--images", type=int, default=256, help="real training images to reconstruct on")
    args = parser.parse_args()
    torch.set_num_threads(1)

    dm = build_data(DataConfig())
    dm.setup("fit")
    x, y = (torch.stack(t) for t in zip(*[dm.val[i] for i in range(5000)], strict=True))
    y = torch.as_tensor(y)
    weights = Path(lwcompress.__file__).parent / "checkpoints" / "fashion_mnist" / f"{args.model}.pt"
    model, _ = build_model(ModelConfig(args.model, weights=str(weights)), 10, 1)
    model.eval()

    @torch.no_grad()
    def top1(m: torch.nn.Module) -> float:
        return float(torch.cat([m(x[i : i + 500]).argmax(1) == y[i : i + 500] for i in range(0, len(x), 500)])
                     .float().mean() * 100)  # fmt: skip

    rtn = compress(model, QuantConfig(wbits=args.wbits, abits=None), dm.normalization, (1, 28, 28))
    learned = copy.deepcopy(rtn.model)
    layers = {n: m for n, m in learned.named_modules() if n in rtn.quant_layers()}
    inputs = capture_inputs(model, list(layers), dm.train_images(args.images), batch_stat_bn=False)
    g = torch.Generator().manual_seed(0)
    for name, q in list(layers.items())[1:]:
        ref = copy.deepcopy(q.layer)  # before hardening the latent weight is the folded FP weight
        q.make_trainable("adaround", False, False, True)
        opt = torch.optim.Adam([{"params": [q.alpha], "lr": 3e-2}, {"params": [q.layer.bias], "lr": 1e-3}])
        for t in range(args.steps):
            batch = inputs[name][torch.randint(0, args.images, (32,), generator=g)]
            with torch.no_grad():
                target = ref(batch)
            loss = (q(batch) - target).pow(2).mean() / target.var()
            progress = t / args.steps
            if progress >= 0.2:  # AdaRound's regularizer after a 20 % warm-up, beta annealed 20 -> 2
                beta = 2 + 9 * (1 + math.cos(math.pi * (progress - 0.2) / 0.8))
                loss = loss + 0.01 * q.rounding_regularizer(beta) / q.alpha.numel()
            opt.zero_grad()
            loss.backward()
            opt.step()
        q.harden()
    print(
        f"{args.model} W{args.wbits}: fp {top1(model):.2f}  rtn {top1(rtn.model):.2f}  "
        f"plain AdaRound {top1(learned):.2f}"
    )


if __name__ == "__main__":
    main()
