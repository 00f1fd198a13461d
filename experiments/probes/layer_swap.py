"""Which learned layers hurt the network? Compress a checkpoint with RTN and with the layer-wise quantizer, then put
the learned version of one layer at a time (or only its bias) into the RTN network and measure validation top-1
and the logit error MSE / Var(FP logits). Validation images only; the test set is for reports.

python experiments/probes/layer_swap.py --model mobilenetv2_small --wbits 3 --abits none --generator real \
    --layers features.4.block.3
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

import lwcompress
from lwcompress.api import compress
from lwcompress.compress import CompressorConfig
from lwcompress.data import DataConfig, build_data
from lwcompress.generate import generator_config
from lwcompress.layerwise import LayerwiseConfig
from lwcompress.models import ModelConfig, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv2_small")
    parser.add_argument("--wbits", type=int, default=4)
    parser.add_argument("--abits", default="4", help="bits or 'none' (weight-only)")
    parser.add_argument("--generator", default="propagated")
    parser.add_argument("--images", type=int, default=5000, help="validation images to evaluate on")
    parser.add_argument("--layers", nargs="*", help="layers to swap in (default: every layer)")
    parser.add_argument("--no-train-bias", action="store_true")
    parser.add_argument("--mode", default="independent", choices=["independent", "sequential"])
    args = parser.parse_args()
    torch.set_num_threads(1)

    dm = build_data(DataConfig())
    dm.setup("fit")
    x, y = (torch.stack(t) for t in zip(*[dm.val[i] for i in range(args.images)], strict=True))
    y = torch.as_tensor(y)
    weights = Path(lwcompress.__file__).parent / "checkpoints" / "fashion_mnist" / f"{args.model}.pt"
    model, _ = build_model(ModelConfig(args.model, weights=str(weights)), 10, 1)
    with torch.no_grad():
        ref = model.eval()(x)

    @torch.no_grad()
    def measure(m: torch.nn.Module) -> str:
        out = m(x)
        top1 = float((out.argmax(1) == y).float().mean() * 100)
        return f"{top1:.2f} ({float((out - ref).pow(2).mean() / ref.var()):.4f})"

    abits = None if args.abits == "none" else int(args.abits)
    rtn = compress(model, CompressorConfig("rtn", wbits=args.wbits, abits=abits), dm.normalization, (1, 28, 28))
    learned = compress(
        model, CompressorConfig(name="quant", wbits=args.wbits, abits=abits), dm.normalization, (1, 28, 28),
        generator=generator_config(args.generator),
        layerwise=LayerwiseConfig(train_bias=not args.no_train_bias, mode=args.mode),
        real_images=dm.train_images(320) if args.generator == "real" else None,
    )  # fmt: skip
    print(f"top-1 (logit error): fp {measure(model)}  rtn {measure(rtn.model)}  layer-wise {measure(learned.model)}")
    ours = learned.compressed_layers()
    for name in args.layers or list(rtn.compressed_layers()):
        swapped = copy.deepcopy(rtn.model)
        swapped.set_submodule(name, copy.deepcopy(ours[name]))
        bias_only = copy.deepcopy(rtn.model)
        if ours[name].layer.bias is not None:
            with torch.no_grad():
                bias_only.get_submodule(name).layer.bias.copy_(ours[name].layer.bias)
        print(f"{name:28s} learned layer {measure(swapped)}   learned bias only {measure(bias_only)}", flush=True)


if __name__ == "__main__":
    main()
