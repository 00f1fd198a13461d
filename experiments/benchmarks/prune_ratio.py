"""Accuracy vs sparsity of magnitude pruning and layer-wise pruning, and the sparsity ratio at equal accuracy.

Reads the summary.json of `compressor=prune` runs (each carries its magnitude-pruning start as `rtn_top1`: the same
mask, no retraining). For every magnitude point (sparsity s, top-1 a) the layer-wise curve, linear between its
measured points, gives the largest sparsity s' still reaching a: the ratio s'/s is how much further layer-wise
pruning goes at the same accuracy (">" where even the sparsest layer-wise run stays above a).

python experiments/benchmarks/prune_ratio.py logs/prune_sweep/<time> > experiments/results/prune_sweep.md
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from lwcompress.report import collect_summaries, lookup


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def reach(curve: list[tuple[float, float]], accuracy: float) -> tuple[float, str]:
    """The largest sparsity at which `curve` (sorted by sparsity) still has `accuracy`, interpolated linearly, and
    how sure that is: "" (measured), "≥ " (even the sparsest run stays above it), "< " (even the densest is below)."""
    if curve[-1][1] >= accuracy:
        return curve[-1][0], "≥ "
    if curve[0][1] < accuracy:
        return curve[0][0], "< "
    best = curve[0][0]
    for (s0, a0), (s1, a1) in zip(curve, curve[1:], strict=False):
        if a0 >= accuracy > a1:
            best = s0 + (s1 - s0) * (a0 - accuracy) / (a0 - a1)
    return best, ""


def ratio(num: tuple[float, str], den: tuple[float, str]) -> str:
    """num / den as text, with the direction a bound on either side implies (or "?" when they conflict)."""
    value = num[0] / den[0]
    marks = {m for m in (num[1].strip(), {"≥": "<", "<": "≥"}.get(den[1].strip(), "")) if m}
    if len(marks) > 1:
        return "?"
    return f"{marks.pop() + ' ' if marks else ''}{value:.2f}×"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+")
    args = parser.parse_args()
    runs = [s for d in args.dirs for s in collect_summaries(d) if s["compressor"] == "prune"]
    if not runs:
        raise SystemExit("no compressor=prune summary.json found")
    groups: dict[tuple, dict[float, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    fp: dict[str, list[float]] = defaultdict(list)
    for s in runs:
        key = (s["model"], lookup(s, "compressor.allocation"), lookup(s, "layerwise.mode"), s["generator"])
        point = groups[key][round(s["sparsity"], 3)]
        point["magnitude"].append(s["rtn_top1"])
        point["layerwise"].append(s["top1"])
        point["wall"].append(s["compress_wall_s"])
        if s.get("fp_top1") is not None:
            fp[s["model"]].append(s["fp_top1"])
    split = ", ".join(sorted({s.get("eval_split", "test") for s in runs}))
    print(f"top-1 % on the {split} split by total sparsity (all conv/linear weights, the dense image layer "
          "included); layer-wise: mean ± std (seeds) and compress wall s.\n")  # fmt: skip
    for (model, allocation, mode, generator), points in sorted(groups.items()):
        fp_cell = f"{mean(fp[model]):.2f}" if fp[model] else "–"
        print(f"### {model}, {allocation} allocation, layer-wise {mode} on {generator} (FP32 {fp_cell})\n")
        print("| sparsity | magnitude | layer-wise | wall s | layer-wise reaches magnitude's top-1 at | ratio |")
        print("|---|---|---|---|---|---|")
        lw_curve = [(s, mean(p["layerwise"])) for s, p in sorted(points.items())]
        mag_curve = [(s, mean(p["magnitude"])) for s, p in sorted(points.items())]
        for (s, p), (_, mag) in zip(sorted(points.items()), mag_curve, strict=True):
            lw = p["layerwise"]
            lw_cell = f"{mean(lw):.2f}" + (f" ± {statistics.stdev(lw):.2f}" if len(lw) > 1 else "")
            at = reach(lw_curve, mag)
            print(f"| {s:.3f} | {mag:.2f} | {lw_cell} | {mean(p['wall']):.0f} | {at[1]}{at[0]:.3f} | "
                  f"{ratio(at, (s, ''))} |")  # fmt: skip
        if fp[model]:
            print("\nAt equal accuracy (FP32 minus a drop): the sparsity each reaches, and layer-wise / magnitude.\n")
            print("| top-1 drop | magnitude | layer-wise | ratio |")
            print("|---|---|---|---|")
            for drop in (0.5, 1.0, 2.0, 5.0):
                target = mean(fp[model]) - drop
                m, lw = reach(mag_curve, target), reach(lw_curve, target)
                print(f"| {drop:.1f} | {m[1]}{m[0]:.3f} | {lw[1]}{lw[0]:.3f} | {ratio(lw, m)} |")
        print()


if __name__ == "__main__":
    main()
