"""Quick in-process comparison of layer-solver settings on the validation split (never the test set): compress a
committed checkpoint once per variant and print validation top-1, compress wall time and the guard's errors.

python experiments/solver_probe.py --model resnet20 --bits 4 4 \
    --variant "rounding=gptq" --variant "rounding=gptq gptq_damp=0.1" --variant "rounding=gptq gptq_target=own"

A variant is space-separated key=value pairs over CompressorConfig, LayerwiseConfig and GeneratorConfig fields
(generator fields prefixed `generator.`); values are parsed as Python literals where they can be.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import time
from pathlib import Path

import torch

import lwcompress
from lwcompress.api import compress
from lwcompress.compress import CompressorConfig
from lwcompress.data import DataConfig, build_data
from lwcompress.generate import GeneratorConfig
from lwcompress.layerwise import LayerwiseConfig
from lwcompress.models import ModelConfig, build_model


def parse(variant: str) -> tuple[dict, dict, dict]:
    """(compressor, layerwise, generator) overrides of one variant string."""
    fields = {f.name for f in dataclasses.fields(CompressorConfig)}
    comp, lw, gen = {}, {}, {}
    for item in variant.split():
        key, value = item.split("=", 1)
        with contextlib.suppress(ValueError, SyntaxError):
            value = ast.literal_eval(value)
        if key.startswith("generator."):
            gen[key.removeprefix("generator.")] = value
        elif key in fields:
            comp[key] = value
        else:
            lw[key] = value
    return comp, lw, gen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--bits", nargs=2, default=["4", "4"], help="weight and input bits ('none': float)")
    parser.add_argument("--all-layers", action="store_true", help="first/last layer weights and last input at --bits")
    parser.add_argument("--variant", action="append", default=[], help="key=value ... (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    dm = build_data(DataConfig())
    dm.setup("fit")
    x, y = (torch.stack(t) for t in zip(*[dm.val[i] for i in range(len(dm.val))], strict=True))
    y = torch.as_tensor(y)
    weights = Path(lwcompress.__file__).parent / "checkpoints" / "fashion_mnist" / f"{args.model}.pt"
    model, _ = build_model(ModelConfig(args.model, weights=str(weights)), 10, 1)
    wbits, abits = (None if b == "none" else int(b) for b in args.bits)
    base = dict(wbits=wbits, abits=abits)
    if args.all_layers:
        base.update(first_layer_wbits=wbits, last_layer_wbits=wbits, last_layer_abits=abits)

    @torch.no_grad()
    def top1(m: torch.nn.Module) -> float:
        m.eval()
        hits = sum(int((m(x[i : i + 500]).argmax(1) == y[i : i + 500]).sum()) for i in range(0, len(x), 500))
        return 100 * hits / len(x)

    rtn = compress(model, CompressorConfig(**base), dm.normalization, (1, 28, 28))
    print(f"{args.model} W{args.bits[0]}A{args.bits[1]}{' all layers' if args.all_layers else ''} seed {args.seed}: "
          f"fp {top1(model):.2f}  rtn {top1(rtn.model):.2f}", flush=True)  # fmt: skip
    real = dm.train_images(1024)
    for variant in args.variant or ["rounding=adaround"]:
        comp, lw, gen = parse(variant)
        start = time.perf_counter()
        out = compress(
            model, CompressorConfig(name="quant", **{**base, **comp}), dm.normalization, (1, 28, 28),
            generator=GeneratorConfig(**{"seed": args.seed, **gen}),
            layerwise=LayerwiseConfig(**{"seed": args.seed, **lw}), real_images=real,
        )  # fmt: skip
        wall = time.perf_counter() - start
        guard = " ".join(f"{k}={v:.4g}" for k, v in out.meta.get("guard", {}).items())
        print(f"  {variant:60s} top1 {top1(out.model):6.2f}  compress {wall:6.1f} s  {guard}", flush=True)


if __name__ == "__main__":
    main()
