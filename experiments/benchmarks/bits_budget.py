"""Issue 13's evidence: top-1 against weight size, uniform widths vs widths allocated under the same budget.

    python experiments/benchmarks/bits_budget.py run [--models resnet20 mobilenetv2_small] [--widths 8 6 5 4 3 2] \
        [--extra 2.5]
                                          [--protocol ends8|all]
    python experiments/benchmarks/bits_budget.py report          # -> experiments/results/bits_budget.md and .png

Both arms use the data-free default compressor (layer-wise quant, propagated data), A8, seeds 0, 1, 2, the test
split. Protocol "ends8": the first and last layer at 8 bits (the usual one); "all": every layer's weights in play,
the first and last too. "uniform W" quantizes every other layer's weights to W bits; "allocated W" gives
compressor.budget.wbits the uniform model's own average weight bits (the same pinned layers, the same bytes) and
lets the sensitivity allocation choose each free layer's width among 2, 3, 4, 5, 6, 8 (at W2 and W8 that budget
leaves only the uniform model, so those cells are not run; the resnet20 W2 ones that ran before this rule equal the
uniform arm); --extra adds allocated-only points (average bits). Each cell is one Hydra multirun over the seeds into
logs/bits_budget/<protocol>/<model>_<arm>_<bits>, skipped once complete, so a killed run resumes; one job at a time
on one thread (THREADS), so the machine's other core stays usable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ.get("BITS_BUDGET_DIR", "logs/bits_budget"))
RESULTS = Path("experiments/results")
SEEDS = (0, 1, 2)


def average_bits(model: str, width: int) -> float:
    """Weight bits per weight of `model` with its first and last layer at 8 bits and the rest at `width` (the
    "ends8" protocol's uniform model)."""
    import torch

    from lwcompress.cli import load_config
    from lwcompress.graph import analyze
    from lwcompress.models import build_model

    job = load_config([f"model={model}"])
    net, _ = build_model(job.model, 10, 1)
    infos = analyze(net.eval(), torch.zeros(1, 1, 28, 28))
    params = {i.name: net.get_submodule(i.name).weight.numel() for i in infos}
    bits = {i.name: 8 if i.is_first or i.is_last else width for i in infos}
    return sum(params[n] * bits[n] for n in params) / sum(params.values())


PROTOCOLS = {"ends8": [], "all": ["compressor.first_layer_wbits=null", "compressor.last_layer_wbits=null"]}


Cell = tuple[str, str, str, list[str]]


def cells(models: list[str], widths: list[int], extra: list[float], protocol: str) -> list[Cell]:
    """(model, arm, bits label, overrides) for every cell."""
    out = []
    for model in models:
        for w in widths:
            out.append((model, "uniform", f"W{w}", [f"compressor.wbits={w}"]))
            # At the smallest and the largest candidate width the budget leaves one choice: the uniform model.
            if 2 < w < 8:
                avg = average_bits(model, w) if protocol == "ends8" else w
                avg = math.ceil(avg * 1e6) / 1e6  # rounded up: never below what the uniform model spends
                out.append((model, "allocated", f"W{w}", [f"compressor.budget.wbits={avg:.6f}"]))
        for avg in extra:
            out.append((model, "allocated", f"{avg:g}avg", [f"compressor.budget.wbits={avg}"]))
    return out


def run(models: list[str], widths: list[int], extra: list[float], protocol: str, threads: int) -> None:
    for model, arm, label, overrides in cells(models, widths, extra, protocol):
        sweep = ROOT / protocol / f"{model}_{arm}_{label}"
        if len(list(sweep.glob("*/summary.json"))) >= len(SEEDS):
            continue
        shutil.rmtree(sweep, ignore_errors=True)  # an incomplete cell starts again (its runs may predate a fix)
        print(f"== {protocol} {model} {arm} {label}", flush=True)
        seeds = ",".join(map(str, SEEDS))
        cmd = ["lwcompress", "-m", f"model={model}", "compressor.abits=8", *PROTOCOLS[protocol], *overrides,
               f"seed={seeds}", f"threads={threads}", "save_model=false", "real_diagnostics=false",
               "task_name=bits_budget", f"+labels.arm={arm}", f"+labels.bits={label}", f"+labels.protocol={protocol}",
               f"hydra.sweep.dir={sweep}"]  # fmt: skip
        if subprocess.run(cmd).returncode != 0:  # the cell's own error is above; the other cells still run
            print(f"== failed: {protocol} {model} {arm} {label}", flush=True)


def report() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(p.read_text()) for p in sorted(ROOT.glob("*/*/*/summary.json"))]
    panels = sorted({(r["config"]["labels"].get("protocol", "ends8"), r["model"]) for r in runs})
    lines = ["Made by `python experiments/benchmarks/bits_budget.py run [--protocol ends8|all]` (1 thread, beside "
             "other jobs) and "
             "`python experiments/benchmarks/bits_budget.py report`. Cells without a row have not run yet.", "",
             "Top-1 % on the test split (mean ± std over seeds, n), data-free default compressor (layer-wise quant, "
             "propagated), A8. Protocol ends8: first and last layer at 8 bits in both arms; all: every layer in play. "
             "Avg bits and KiB: the compressible layers' weights (codes only). Allocated: compressor.budget.wbits = "
             "the uniform model's average weight bits (same bytes).", "",
             "| protocol | model | bits | uniform: avg bits, KiB, top-1 | allocated: avg bits, KiB, top-1 | "
             "allocate s |", "|---|---|---|---|---|---|"]  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (protocol, model) in zip(axes[0], panels, strict=True):
        mine = [r for r in runs if r["model"] == model and r["config"]["labels"].get("protocol", "ends8") == protocol]
        fps = [r["fp_top1"] for r in runs if r["model"] == model and r.get("fp_top1") is not None]
        fp = statistics.fmean(fps) if fps else float("nan")
        by: dict[tuple[str, str], list[dict]] = {}
        for r in mine:
            by.setdefault((r["config"]["labels"]["arm"], r["config"]["labels"]["bits"]), []).append(r)
        for label in sorted({b for _, b in by}, key=lambda b: -float(b.strip("Wavg"))):
            alloc = [r.get("allocate_wall_s", 0) for r in by.get(("allocated", label), [])]
            lines.append(f"| {protocol} | {model} | {label} | {_cell(by.get(('uniform', label), []))} "
                         f"{_cell(by.get(('allocated', label), []))} "
                         f"{f'{statistics.fmean(alloc):.0f}' if alloc else '–'} |")  # fmt: skip
        lines.append(f"| {protocol} | {model} | FP32 | {fp:.2f} | | |")
        for arm, style in (("uniform", "o-"), ("allocated", "s--")):
            points = sorted((_kib(rs), statistics.fmean(r["top1"] for r in rs)) for (a, _), rs in by.items()
                            if a == arm)  # fmt: skip
            if points:
                ax.plot(*zip(*points, strict=True), style, label=arm)
        ax.axhline(fp, color="gray", lw=0.8, ls=":", label="FP32")
        sizes = [_kib(rs) for rs in by.values()]
        ax.set_xscale("log", base=2)
        ax.set_xlim(min(sizes) / 1.25, max(sizes) * 1.25)  # equal sizes must look equal
        ax.set_xlabel("weights, KiB (log2)")
        ax.set_ylabel("top-1 %")
        ax.set_title(f"{model}, {protocol}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "bits_budget.png", dpi=100)
    (RESULTS / "bits_budget.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _kib(rs: list[dict]) -> float:
    return statistics.fmean(r["weight_bits"] for r in rs) / 8 / 1024


def _cell(rs: list[dict]) -> str:
    """ "avg bits, KiB, top-1 mean ± std (n) |" of one arm's runs."""
    if not rs:
        return "– |"
    top = [r["top1"] for r in rs]
    std = statistics.stdev(top) if len(top) > 1 else 0.0
    avg = statistics.fmean(r["avg_wbits"] for r in rs)
    return f"{avg:.2f}, {_kib(rs):.1f}, {statistics.fmean(top):.2f} ± {std:.2f} ({len(top)}) |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["run", "report"])
    parser.add_argument("--models", nargs="+", default=["resnet20", "mobilenetv2_small"])
    parser.add_argument("--widths", nargs="+", type=int, default=[8, 6, 5, 4, 3, 2])
    parser.add_argument("--extra", nargs="*", type=float, default=[2.5])
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="ends8")
    args = parser.parse_args()
    if args.what == "run":
        run(args.models, args.widths, args.extra, args.protocol, int(os.environ.get("THREADS", "1")))
    else:
        report()


if __name__ == "__main__":
    sys.exit(main())
