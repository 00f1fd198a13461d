"""Quick in-process comparison of layer-solver settings on the validation split (never the test set): compress a
committed checkpoint once per variant and print validation top-1, compress wall time and the guard's errors.

python experiments/probes/solver_probe.py --model resnet20 --bits 4 4 \
    --variant "rounding=gptq" --variant "rounding=gptq gptq.damp=0.1" --variant "rounding=gptq target=own"

A variant is space-separated key=value pairs over CompressorConfig, LayerwiseConfig and GeneratorConfig fields
(generator fields prefixed `generator.`); values are parsed as Python literals where they can be.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import dataclasses
import time
from pathlib import Path

import torch
from probe_data import load, top1
from torch import nn

from lwcompress.api import CompressedModel, Runtime, compress
from lwcompress.compress import CompressorConfig
from lwcompress.generate import GenerationContext, GeneratorConfig, LayerData, generator_config, pixel_range
from lwcompress.graph import analyze, fold_bn
from lwcompress.layerwise import LayerwiseConfig
from lwcompress.layerwise.guard import guard

# CompressorConfig fields that round-to-nearest uses: a variant setting one also prints its own RTN start.
RTN_FIELDS = {"symmetric", "scale", "act_sigmas", "act_range", "act_sums"}


# The rounding settings' keys before they moved into layerwise.roundings (the committed probe scripts use them).
ROUNDING_KEYS = {
    "gptq_damp": ("gptq", "damp"),
    "gptq_rows": ("gptq", "rows"),
    "gptq_order": ("gptq", "order"),
    **{k: ("adaround", k) for k in ("reg_weight", "reg_warmup", "rtn_anchor", "beta_start", "beta_end")},
}


def parse(variant: str) -> tuple[dict, dict, dict]:
    """(compressor, layerwise, generator) overrides of one variant string; a rounding's setting as
    `<rounding>.<key>=value` (`gptq.damp=0.1`) or by its old layerwise name (`gptq_damp=0.1`)."""
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
        elif key in ROUNDING_KEYS or "." in key:
            rounding, setting = ROUNDING_KEYS.get(key) or key.split(".", 1)
            lw.setdefault("roundings", {}).setdefault(rounding, {})[setting] = value
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
    parser.add_argument("--guards", action="store_true", help="also apply guard=model and guard=layer afterwards")
    parser.add_argument("--layers", action="store_true", help="per layer: errors before/after, share of codes moved")
    parser.add_argument("--image-cache", help="keep distilled images in this folder and reuse them across calls")
    parser.add_argument("--guard-generator", help="judge the guard in this generator's domain (default: the run's)")
    args = parser.parse_args()
    model, dm, x, y = load(args.model, args.threads)
    wbits, abits = (None if b == "none" else int(b) for b in args.bits)
    base = dict(wbits=wbits, abits=abits)
    if args.all_layers:
        base.update(first_layer_wbits=wbits, last_layer_wbits=wbits, last_layer_abits=abits)

    rtn = compress(model, CompressorConfig("rtn", **base), dm.normalization, (1, 28, 28))
    print(f"{args.model} W{args.bits[0]}A{args.bits[1]}{' all layers' if args.all_layers else ''} seed {args.seed}: "
          f"fp {top1(model, x, y):.2f}  rtn {top1(rtn.model, x, y):.2f}", flush=True)  # fmt: skip
    real = dm.train_images(1024)
    for variant in args.variant or ["rounding=adaround"]:
        comp, lw, gen = parse(variant)
        out_gen, cache = generator_config(**{"name": "distilled", "seed": args.seed, **gen}), {}
        start = time.perf_counter()
        out = compress(
            model, CompressorConfig(name="quant", **{**base, **comp}), dm.normalization, (1, 28, 28),
            generator=out_gen, layerwise=LayerwiseConfig(**{"seed": args.seed, **lw}), real_images=real,
            runtime=Runtime(cache=cache, image_cache_dir=Path(args.image_cache) if args.image_cache else None),
        )  # fmt: skip
        wall = time.perf_counter() - start
        start_fields = {k: v for k, v in comp.items() if k in RTN_FIELDS}  # what changes the RTN start too
        rtn_note = ""
        if start_fields:
            own = compress(model, CompressorConfig("rtn", **{**base, **start_fields}), dm.normalization, (1, 28, 28))
            rtn_note = f"  (its rtn {top1(own.model, x, y):6.2f})"
        print(f"  {variant:60s} top1 {top1(out.model, x, y):6.2f}  compress {wall:6.1f} s{rtn_note}", flush=True)
        if args.layers:
            for r in out.results:
                on_real = f"real {r.real_rtn_error:.4g} -> {r.real_error:.4g}" if r.real_error is not None else ""
                codes = [m.model.get_submodule(r.name).codes() for m in (out, rtn)]
                moved = float((codes[0] != codes[1]).float().mean())  # weights off their round-to-nearest code
                print(f"    {r.name:28s} synthetic {r.rtn_error:.4g} -> {r.error:.4g}  {on_real}  moved {moved:.1%}",
                      flush=True)  # fmt: skip
        if args.guards and out.results:
            judge = generator_config(args.guard_generator, seed=args.seed) if args.guard_generator else out_gen
            for mode in ("model", "layer"):
                clock = time.perf_counter()
                guarded, errors = guarded_copy(model, out, rtn, judge, mode, cache, real, dm.normalization)
                errs = " ".join(f"{k}={v:.4g}" for k, v in errors.items())
                took = time.perf_counter() - clock
                print(f"    guard={mode}: top1 {top1(guarded, x, y):6.2f}  ({took:.1f} s)  {errs}", flush=True)


def guarded_copy(
    model: nn.Module,
    out: CompressedModel,
    rtn: CompressedModel,
    gen: GeneratorConfig,
    mode: str,
    cache: dict,
    real: torch.Tensor,
    normalization: dict[str, list[float]],
) -> tuple[nn.Module, dict]:
    """`out` with the layers the network-level guard puts back replaced by their RTN versions, and its errors."""
    example = torch.zeros(1, 1, 28, 28)
    data = LayerData(
        model,
        analyze(model, example),
        gen,
        GenerationContext((1, 28, 28), 8, real, cache, pixel_range=pixel_range(normalization)),
    )
    names = [r.name for r in out.layers]
    refs = [fold_bn(model).get_submodule(n) for n in names]
    domain, _ = data.domain()
    learned, start = ([m.model.get_submodule(n) for n in names] for m in (out, rtn))
    back, errors = guard(
        names, learned, start, refs, fold_bn(domain).eval(), data.guard_images(128), data.float_inputs, mode
    )
    result = copy.deepcopy(out.model)
    for name, b in zip(names, back, strict=True):
        if b:
            result.set_submodule(name, copy.deepcopy(rtn.model.get_submodule(name)))
    return result, {**errors, "reverted": sum(back)}


if __name__ == "__main__":
    main()
