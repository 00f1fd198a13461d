"""Accuracy vs sparsity of magnitude pruning and layer-wise pruning, and the sparsity ratio at equal accuracy.

Reads the summary.json of `compressor=prune` runs (each carries its magnitude-pruning start as `rtn_top1`: the same
mask, no retraining). For every magnitude point (sparsity s, top-1 a) the layer-wise curve, linear between its
measured points, gives the largest sparsity s' still reaching a: the ratio s'/s is how much further layer-wise
pruning goes at the same accuracy (">" where even the sparsest layer-wise run stays above a).

python experiments/prune_ratio.py logs/prune_sweep/<time> > experiments/results/prune_sweep.md
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from lwcompress.report import collect_summaries, lookup


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def reach(curve: list[tuple[float, float]], accuracy: float) -> tuple[float, bool]:
    """The largest sparsity at which `curve` (sorted by sparsity) still has `accuracy`, interpolated; and whether
    that is only a lower bound (the curve never drops below it)."""
    if curve[-1][1] >= accuracy:
        return curve[-1][0], True
    best = None
    for (s0, a0), (s1, a1) in zip(curve, curve[1:], strict=False):
        if a0 >= accuracy > a1:
            best = s0 + (s1 - s0) * (a0 - accuracy) / (a0 - a1)
    if best is None:  # below the curve's first point: no layer-wise run is that bad
        return curve[0][0], False
    return best, False


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
        curve = [(s, mean(p["layerwise"])) for s, p in sorted(points.items())]
        for s, p in sorted(points.items()):
            lw = p["layerwise"]
            lw_cell = f"{mean(lw):.2f}" + (f" ± {statistics.stdev(lw):.2f}" if len(lw) > 1 else "")
            at, bound = reach(curve, mean(p["magnitude"]))
            mark = "≥ " if bound else ""
            print(f"| {s:.3f} | {mean(p['magnitude']):.2f} | {lw_cell} | {mean(p['wall']):.0f} | {mark}{at:.3f} | "
                  f"{mark}{at / s:.2f}× |")  # fmt: skip
        print()


if __name__ == "__main__":
    main()
