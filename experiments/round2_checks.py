"""The three goals of the round-2 benchmark, checked cell by cell from its runs' summary.json files:

1. never below the closed-form start: every seed's data-free default top-1 >= the RTN top-1 it started from;
2. data-free -> real distance: mean(real data) - mean(default) <= 0.5 at W4A4 and W3A8, <= 2 at W2A8, W3A3 and
   W4A4 all layers (other cells: reported, no goal);
3. the zero-training solver: GPTQ's mean top-1 vs the default's, at >= 10x less compression wall time.

python experiments/round2_checks.py logs/round2/multiruns > experiments/results/round2_checks.md
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from lwcompress.report import collect_summaries, lookup

METHODS = ("data-free default", "real data", "GPTQ")
GAP_GOALS = {"W4A4": 0.5, "W3A8": 0.5, "W2A8": 2.0, "W3A3": 2.0, "W4A4 all layers": 2.0}


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def fmt(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    args = parser.parse_args()
    runs: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for s in collect_summaries(args.root):
        labels = lookup(s, "labels") or {}
        if s.get("top1") is not None and "cell" in labels and "method" in labels:
            runs[(str(s["model"]), labels["cell"], labels["method"])].append(s)
    cells = sorted({(m, c) for m, c, _ in runs}, key=lambda mc: (mc[0], mc[1]))
    print("Goals of the round-2 benchmark, cell by cell (test split; command in the file's first lines).\n")
    print("| model | cell | default ≥ its RTN start, per seed | real − default (goal) | GPTQ − default | "
          "default / GPTQ wall | met |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for model, cell in cells:
        default = sorted(runs.get((model, cell, "data-free default"), []), key=lambda s: lookup(s, "seed"))
        starts = [f"{s['top1'] - s['rtn_top1']:+.2f}" for s in default if s.get("rtn_top1") is not None]
        never_below = all(s["top1"] >= s["rtn_top1"] for s in default if s.get("rtn_top1") is not None)
        top = {m: mean([s["top1"] for s in runs.get((model, cell, m), [])]) for m in METHODS}
        wall = {m: mean([s["compress_wall_s"] for s in runs.get((model, cell, m), [])]) for m in METHODS}
        dflt, real, gptq = (top[m] for m in METHODS)
        gap = None if real is None or dflt is None else real - dflt
        goal = GAP_GOALS.get(cell)
        solver = None if gptq is None or dflt is None else gptq - dflt
        ratio = None if wall["GPTQ"] is None or dflt is None else wall["data-free default"] / wall["GPTQ"]
        met = ["start ✓" if default and never_below else "start ✗" if default else "start –"]
        if goal is not None and gap is not None:
            met.append("gap ✓" if gap <= goal else "gap ✗")
        if solver is not None and ratio is not None:
            met.append("solver ✓" if solver >= -0.1 and ratio >= 10 else "solver ✗")
        print(f"| {model} | {cell} | {' '.join(starts) or '–'} | {fmt(gap)} ({fmt(goal, 1) if goal else 'none'}) | "
              f"{fmt(solver)} | {fmt(ratio, 1)}× | {', '.join(met)} |")  # fmt: skip
    print("\nsolver ✓: GPTQ within 0.1 of the default's mean top-1 (or above) at ≥ 10× less compression time.")


if __name__ == "__main__":
    main()
