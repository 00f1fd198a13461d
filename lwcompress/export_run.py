"""`lwcompress-export RUN_DIR`: a run's compressed model as an ONNX file; with `--check`, proof on the full test set
that onnxruntime computes what the PyTorch model computes, and its size and speed next to the FP32 export's."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime
import torch

from lwcompress import io
from lwcompress.api import CompressedModel, export_onnx, load_compressed
from lwcompress.data import DATA, DataConfig
from lwcompress.errors import UserError
from lwcompress.evaluate import size_bits
from lwcompress.export import INTEGER_LAYER_OPS, agreement, latency_ms, optimized_ops, to_onnx
from lwcompress.graph.fold import fold_bn
from lwcompress.models import ModelConfig, build_model
from lwcompress.report import table

BATCHES = (1, 256)
HEADER = ["model", "FP32 param bytes", "packed bytes (+ masks)", "ONNX file bytes", "latency b=1 ms", "b=256 ms"]


class Mismatch(Exception):
    """onnxruntime disagrees with the PyTorch model beyond the tolerance."""


@dataclass
class Run:
    """A finished compression run: its config (summary.json) and its compressed model."""

    dir: Path
    config: dict[str, Any]
    compressed: CompressedModel

    def data(self) -> Any:
        return data_module(self.config)

    def fp_model(self) -> torch.nn.Module:
        dm = self.data()
        return build_model(ModelConfig(**self.config["model"]), dm.num_classes, dm.in_channels)[0]


def data_module(config: dict[str, Any]) -> Any:
    """The run's data module, not yet set up (its class count and channels are known without loading)."""
    return DATA.get(config["data"]["name"])(DataConfig(**config["data"]))


def load_run(run_dir: Path) -> Run:
    """The run's config and compressed model; every missing or broken piece is a one-line UserError."""
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run dir")
    ckpt, summary = run_dir / "compressed.pt", run_dir / "summary.json"
    if not ckpt.is_file():
        raise UserError(f"{run_dir} has no compressed.pt (runs write it unless save_model=false)")
    if not summary.is_file():
        raise UserError(f"{run_dir} has no summary.json: the run did not finish")
    try:
        config = json.loads(summary.read_text())["config"]
        dm = data_module(config)
        structure = ModelConfig(**{**config["model"], "weights": None})  # the stored state replaces every weight
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{summary} holds no usable run config ({type(e).__name__}: {e})") from None
    model, _ = build_model(structure, dm.num_classes, dm.in_channels)
    return Run(run_dir, config, load_compressed(ckpt, model))


def check(run: Run, onnx_path: Path, workdir: Path, threads: int, repeats: int, min_agreement: float) -> dict:
    """Agreement on the full test set (a Mismatch below `min_agreement` %), bytes, latency and fused operators."""
    dm = run.data()
    dm.prepare_data()
    dm.setup()
    norm = run.compressed.meta["normalization"]  # what the model was compressed (and trained) with
    if norm != dm.normalization:
        dm.renormalize(norm)
    agree = agreement(run.compressed.model, onnx_path, dm.test_dataloader(), threads)
    if agree.agree < min_agreement:
        raise Mismatch(
            f"onnxruntime agrees with the PyTorch model on {agree.agree:.2f} % of the {agree.images} test "
            f"images (< {min_agreement} %; max |logit diff| {agree.max_abs:.3g}): nothing written"
        )
    fp = run.fp_model()
    shape = tuple(run.compressed.meta["input_shape"])
    fp_path = io.write_bytes(
        workdir / "fp32.onnx", to_onnx(fold_bn(fp), torch.zeros(1, *shape), {}).SerializeToString()
    )
    ops = optimized_ops(onnx_path, threads)
    quantized = run.compressed.compressed_layers().values()
    layers = len(quantized)
    latency = {
        name: {b: latency_ms(path, (b, *shape), threads, repeats) for b in BATCHES}
        for name, path in (("fp32", fp_path), ("compressed", onnx_path))
    }
    return {
        "agreement": vars(agree),
        "bytes": {
            "fp32_params": size_bits(fp) // 8,
            "packed": run.compressed.size_bits() // 8,
            "fp32_onnx": fp_path.stat().st_size,
            "compressed_onnx": onnx_path.stat().st_size,
        },
        "latency_ms": latency,
        "onnxruntime": onnxruntime.__version__,
        "threads": threads,
        "repeats": repeats,
        "integer_layers": sum(n for op, n in ops.items() if op in INTEGER_LAYER_OPS),
        "integer_adds": ops.get("QLinearAdd", 0),
        "layers": layers,
        "integer_graph": run.compressed.config.integer_graph,
        "eight_bit_layers": sum(q.abits == 8 and q.wbits is not None for q in quantized),  # those kernels can take
        "unsigned_weight_layers": sum(q.abits == 8 and q.wbits is not None and not q.symmetric for q in quantized),
        "narrow_weight_layers": sum(q.abits == 8 and q.wbits is not None and q.wbits <= 4 for q in quantized),
        "runtime_ops": dict(sorted(ops.items())),
    }


def verdict(report: dict) -> list[str]:
    """Plain sentences on the speed: where the compressed graph is not faster, why (from the operators it runs)."""
    lat, ints, layers, ops = report["latency_ms"], report["integer_layers"], report["layers"], report["runtime_ops"]
    if ints == 0:
        why = (f"onnxruntime fused none of the {layers} quantized layers into integer kernels (it has none for int4 "
               "weights or activations below 8 bit, and float biases keep the rest in float)")  # fmt: skip
    else:
        why = f"onnxruntime ran {ints} of {layers} layers as integer kernels"
        if ops.get("QLinearAdd"):
            why += f" (and {ops['QLinearAdd']} residual adds)"
        if ops.get("Transpose"):
            why += f", with {ops['Transpose']} layout Transposes around them"
    why += (f"; {ops.get('DequantizeLinear', 0)} DequantizeLinear and {ops.get('QuantizeLinear', 0)} QuantizeLinear "
            "nodes run in float on every call (weights are dequantized each time)")  # fmt: skip
    if ints < report["eight_bit_layers"] and not report["integer_graph"]:
        why += ("; compressor.integer_graph=true (with int32_bias) quantizes what lies between the layers, so that "
                "every 8-bit layer and residual add can run as an integer kernel")  # fmt: skip
    if report["int4"] and report["narrow_weight_layers"]:
        why += (f"; {report['narrow_weight_layers']} layers with 8-bit inputs store int4/uint4 codes, which no "
                "integer kernel takes: --int8-weights carries them in int8")  # fmt: skip
    if ints and report["unsigned_weight_layers"]:
        why += (f"; {report['unsigned_weight_layers']} 8-bit layers store uint8 weight codes (asymmetric grids), "
                "which take onnxruntime's slower unsigned-weight kernels: compressor.symmetric=true stores int8 "
                "codes")  # fmt: skip
    lines = []
    for b in BATCHES:
        fp, comp = lat["fp32"][b], lat["compressed"][b]
        if comp < fp:
            lines.append(f"batch {b}: the compressed graph is {fp / comp:.2f}x faster ({comp:.3f} vs {fp:.3f} ms).")
        else:
            lines.append(f"batch {b}: the compressed graph is NOT faster ({comp:.3f} vs {fp:.3f} ms): {why}.")
    return lines


def render(run: Run, out: Path, report: dict) -> str:
    """The size and speed table of `--check` as markdown."""
    a, by, lat = report["agreement"], report["bytes"], report["latency_ms"]
    matches = report["simulated_int32_bias"] == (report["biases"] == "int32")
    sim = "as the run computed them" if matches else "rounded differently from the run's biases"
    rows = [
        ["FP32 export", by["fp32_params"], "-", by["fp32_onnx"], f"{lat['fp32'][1]:.3f}", f"{lat['fp32'][256]:.2f}"],
        [
            "compressed export",
            by["fp32_params"],
            by["packed"],
            by["compressed_onnx"],
            f"{lat['compressed'][1]:.3f}",
            f"{lat['compressed'][256]:.2f}",
        ],
    ]
    c = run.compressed.config
    ops = ", ".join(f"{k} {v}" for k, v in report["runtime_ops"].items())
    return "\n".join(
        [
            f"# {out.name}: {run.config['model']['name']} {c.label()} ({c.name}), from {run.dir}; "
            f"{report['biases']} biases ({sim}), {'int4' if report['int4'] else 'int8'} codes below 5 bit"
            + (f", float kernels kept for {', '.join(report['keep_float'])}" if report["keep_float"] else ""),
            "",
            f"onnxruntime vs PyTorch on the {a['images']} test images: top-1 agreement {a['agree']:.2f} %, "
            f"top-1 {a['onnx_top1']:.2f} vs {a['torch_top1']:.2f} %, "
            f"|logit diff| max {a['max_abs']:.3g} mean {a['mean_abs']:.3g}.",
            "",
            "```text",
            table(HEADER, rows),
            "```",
            "",
            f"Latency: onnxruntime {report['onnxruntime']} CPU, median of {report['repeats']} runs, "
            f"{report['threads']} intra-op thread(s). "
            f"Integer kernels: {report['integer_layers']} of {report['layers']} layers, "
            f"{report['integer_adds']} residual adds. Operators run: {ops}.",
            "",
            *verdict(report),
            "",
        ]
    )


def export_run(args: argparse.Namespace) -> Path:
    """Export (and check); the output file appears only when everything passed."""
    torch.set_num_threads(args.threads)
    run = load_run(args.run_dir)
    out = args.out or args.run_dir / "compressed.onnx"
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    simulated = run.compressed.config.int32_bias  # the run computed with int32-grid biases
    bias = args.bias or ("int32" if simulated else "float")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export.") as tmp:
        staged = export_onnx(run.compressed, Path(tmp) / out.name, run.config, not args.int8_weights, bias,
                             keep_float=args.keep_float)  # fmt: skip
        if args.check:
            report = {"biases": bias, "simulated_int32_bias": simulated, "int4": not args.int8_weights,
                      "keep_float": args.keep_float,
                      **check(run, staged, Path(tmp), args.threads, args.repeats, args.min_agreement)}  # fmt: skip
            text = render(run, out, report)
            io.write_json(out.with_suffix(".check.json"), report)
            io.write_text(out.with_suffix(".check.md"), text)
            print(text)
        os.replace(staged, out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lwcompress-export",
        description="Write a run's compressed model (compressed.pt) as an ONNX graph that stock onnxruntime runs: "
        "integer weights behind DequantizeLinear, QuantizeLinear/DequantizeLinear at every quantized layer input.",
        epilog="Exit codes: 0 written (and checked); 1 --check found onnxruntime disagreeing with PyTorch; 2 bad "
        "input (no run, no compressed.pt, corrupt file, unsupported layer). Nothing is written unless it is 0.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a compression run dir (compressed.pt)")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="output format (default: onnx)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="output file (default: RUN_DIR/compressed.onnx)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare with the PyTorch model on the full test set "
        "and time both exports; writes FILE's .check.md and .check.json",
    )
    parser.add_argument(
        "--int8-weights",
        action="store_true",
        help="store weights of 4 bit and below as int8 codes instead of int4 (a bigger file; with --bias int32 "
        "onnxruntime can then fuse their A8 layers into integer kernels)",
    )
    parser.add_argument(
        "--bias",
        choices=["float", "int32"],
        default=None,
        help="biases of layers with quantized input and weight: float or int32 codes, the form onnxruntime fuses "
        "into integer kernels at A8 with 8-bit weight codes (default: int32 if the run was made with "
        "compressor.int32_bias=true, which simulates exactly those biases, else float; either is exact then)",
    )
    parser.add_argument(
        "--keep-float",
        action="append",
        default=[],
        metavar="RULE",
        help="with --bias int32: run these quantized layers as float kernels on dequantized inputs and weights "
        "(the same function; their int32-grid biases added in float): layer-name patterns (fnmatch, re:<regex>) or "
        "'depthwise' (onnxruntime's integer kernel is slower than its float one there with uint8 weight codes); "
        "repeatable",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (default 1)")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per latency (default 50)")
    parser.add_argument(
        "--min-agreement", type=float, default=99.9, help="top-1 agreement %% below which --check fails (default 99.9)"
    )
    args = parser.parse_args(argv)
    try:
        export_run(args)
    except (Mismatch, FloatingPointError) as e:  # onnxruntime computed something else (or non-finite logits)
        print(f"error: {e}", file=sys.stderr)
        return 1
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
