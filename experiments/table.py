"""Turn the summary.json files of one or more runs into a markdown table of top-1 by method and bits.

Runs that differ only in their seed share a cell: it shows the mean, and "± std (n)" over seeds when there
are several. Columns are the compressor's setting (bits, and sparsity when pruning). `--wall` adds each cell's mean
compression wall time in seconds (and, where images were generated, the part of it spent generating them).

python experiments/table.py logs/rtn_table/multiruns/<time> [more dirs] > experiments/results/rtn_table.md
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from lwcompress.report import collect_summaries, lookup


def column(s: dict) -> str:
    return s.get("setting") or f"W{s['wbits'] or 32}A{s['abits'] or 32}"


def order(col: str) -> tuple:
    """Wider bits first, then denser: W8A8, W4A4, ..., W32A32 70% uniform last."""
    bits, _, rest = col.partition(" ")
    w, a = bits[1:].split("A")
    return int(w) == 32, -int(w), -int(a), rest


def label(key: str) -> str:
    """A row key's short name: its last part, or the group for `<group>.name` (preconditioner.name)."""
    parts = key.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def cell(values: list[float], walls: list[tuple[float, float]] | None) -> str:
    if not values:
        return "–"
    text = (
        f"{mean(values):.2f}"
        if len(values) == 1
        else f"{mean(values):.2f} ± {statistics.stdev(values):.2f} ({len(values)})"
    )
    if walls:
        total, generating = mean([w for w, _ in walls]), mean([g for _, g in walls])
        text += f" ({total:.0f} s" + (f", {generating:.0f} generating)" if generating >= 0.5 else ")")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+")
    parser.add_argument(
        "--row",
        default="compressor.name,compressor.scale,compressor.symmetric",
        help="comma-separated summary or dotted config keys that name a row",
    )
    parser.add_argument("--wall", action="store_true", help="add the mean compress_wall_s of each cell")
    args = parser.parse_args()
    runs = [s for d in args.dirs for s in collect_summaries(d)]
    if not runs:
        raise SystemExit("no summary.json found")
    cols = sorted({column(s) for s in runs}, key=order)
    cells: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    walls: dict[tuple, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    fp: dict[str, list[float]] = defaultdict(list)
    for s in runs:
        method = " ".join(f"{label(k)}={lookup(s, k)}" for k in args.row.split(","))
        cells[(s["model"], method)][column(s)].append(s["top1"])
        walls[(s["model"], method)][column(s)].append((s["compress_wall_s"], s.get("generate_wall_s") or 0.0))
        if s.get("fp_top1") is not None:
            fp[s["model"]].append(s["fp_top1"])
    split = ", ".join(sorted({s.get("eval_split", "test") for s in runs}))
    print(f"top-1 % on the {split} split; FP32 is the uncompressed model.\n")
    print("| model | method | FP32 | " + " | ".join(cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for key, row in sorted(cells.items()):
        model, method = key
        fp_cell = f"{mean(fp[model]):.2f}" if fp[model] else "–"
        cells_text = [cell(row.get(c, []), walls[key][c] if args.wall else None) for c in cols]
        print(f"| {model} | {method} | {fp_cell} | " + " | ".join(cells_text) + " |")


if __name__ == "__main__":
    main()
