"""Turn the summary.json files of one or more runs into a markdown table of top-1 by method and bits.

Runs that differ only in their seed share a cell: it shows the mean, and "± std (n)" over seeds when there
are several. `--wall` adds each row's mean compression wall time in seconds.

python experiments/table.py logs/rtn_table/multiruns/<time> [more dirs] > experiments/results/rtn_table.md
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from lwcompress.report import collect_summaries, lookup


def bits(s: dict) -> str:
    return f"W{s['wbits']}A{s['abits'] if s['abits'] is not None else 32}"


def label(key: str) -> str:
    """A row key's short name: its last part, or the group for `<group>.name` (preconditioner.name)."""
    parts = key.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def cell(values: list[float]) -> str:
    if not values:
        return "–"
    mean = sum(values) / len(values)
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {statistics.stdev(values):.2f} ({len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+")
    parser.add_argument(
        "--row",
        default="compressor.name,compressor.scale,compressor.symmetric",
        help="comma-separated summary or dotted config keys that name a row",
    )
    parser.add_argument("--wall", action="store_true", help="add the mean compress_wall_s of each row")
    args = parser.parse_args()
    runs = [s for d in args.dirs for s in collect_summaries(d)]
    if not runs:
        raise SystemExit("no summary.json found")
    cols = sorted({bits(s) for s in runs}, key=lambda b: (-int(b[1 : b.index("A")]), -int(b[b.index("A") + 1 :])))
    cells: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    walls: dict[tuple, list[float]] = defaultdict(list)
    fp: dict[str, list[float]] = defaultdict(list)
    for s in runs:
        method = " ".join(f"{label(k)}={lookup(s, k)}" for k in args.row.split(","))
        cells[(s["model"], method)][bits(s)].append(s["top1"])
        walls[(s["model"], method)].append(s["compress_wall_s"])
        if s.get("fp_top1") is not None:
            fp[s["model"]].append(s["fp_top1"])
    split = ", ".join(sorted({s.get("eval_split", "test") for s in runs}))
    print(f"top-1 % on the {split} split; FP32 is the uncompressed model.\n")
    wall = " wall s |" if args.wall else ""
    print("| model | method | FP32 | " + " | ".join(cols) + f" |{wall}")
    print("|---|---|---|" + "---|" * len(cols) + ("---|" if args.wall else ""))
    for key, row in sorted(cells.items()):
        model, method = key
        fp_cell = f"{sum(fp[model]) / len(fp[model]):.2f}" if fp[model] else "–"
        extra = f" {sum(walls[key]) / len(walls[key]):.1f} |" if args.wall else ""
        print(f"| {model} | {method} | {fp_cell} | " + " | ".join(cell(row.get(c, [])) for c in cols) + f" |{extra}")


if __name__ == "__main__":
    main()
