"""Turn the summary.json files of one or more runs into a markdown table of top-1 by method and bits.

python experiments/table.py logs/rtn_table/multiruns/<time> [more dirs] > experiments/results/rtn_table.md
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from lwcompress.report import collect_summaries, lookup


def bits(s: dict) -> str:
    return f"W{s['wbits']}A{s['abits'] if s['abits'] is not None else 32}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+")
    parser.add_argument(
        "--row",
        default="compressor.name,compressor.scale,compressor.symmetric",
        help="comma-separated summary or dotted config keys that name a row",
    )
    args = parser.parse_args()
    runs = [s for d in args.dirs for s in collect_summaries(d)]
    if not runs:
        raise SystemExit("no summary.json found")
    cols = sorted({bits(s) for s in runs}, key=lambda b: (-int(b[1 : b.index("A")]), -int(b[b.index("A") + 1 :])))
    cells: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    fp: dict[str, list[float]] = defaultdict(list)
    for s in runs:
        method = " ".join(f"{k.split('.')[-1]}={lookup(s, k)}" for k in args.row.split(","))
        cells[(s["model"], method)][bits(s)].append(s["top1"])
        fp[s["model"]].append(s["fp_top1"])
    print("| model | method | FP32 | " + " | ".join(cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for (model, method), row in sorted(cells.items()):
        values = [f"{sum(row[c]) / len(row[c]):.2f}" if row.get(c) else "–" for c in cols]
        print(f"| {model} | {method} | {sum(fp[model]) / len(fp[model]):.2f} | " + " | ".join(values) + " |")


if __name__ == "__main__":
    main()
