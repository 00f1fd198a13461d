"""A round's validation runs (round7_val.sh and round7_steps.sh; round8_coarse.sh) as one markdown table: a row per
model x cell, a column per variant (`_s1`: seed 1), top-1 % on the validation split and the compression's wall
seconds (images included where the run made them), and the default's round-to-nearest start. A variant's sweep of
several seeds (round 15) shows each seed's top-1, their mean and the mean wall.

    python experiments/probes/round7_collect.py [logs/round7_val | logs/round8_coarse]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def main(root: Path) -> None:
    runs: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(root.glob("*/*/**/summary.json")):
        variant, cell = path.relative_to(root).parts[:2]
        runs[cell.rsplit("_", 1)[0]][variant].append(json.loads(path.read_text()))
    cells: dict[str, dict[str, str]] = defaultdict(dict)
    for cell, by_variant in runs.items():
        row = cells[cell]
        for variant, summaries in by_variant.items():
            top1 = [s["top1"] for s in summaries]
            wall = sum(s["compress_wall_s"] for s in summaries) / len(summaries)
            shown = " / ".join(f"{t:.2f}" for t in top1)
            row[variant] = f"{shown}{f' (mean {sum(top1) / len(top1):.2f})' if len(top1) > 1 else ''} ({wall:.0f} s)"
            rtn = summaries[0].get("rtn_top1")
            if variant == "default" and rtn is not None:  # the default's round-to-nearest start
                row["RTN start"] = f"{rtn:.2f}"
    variants = sorted({v for row in cells.values() for v in row})
    print("| model / cell | " + " | ".join(variants) + " |")
    print("|---" * (len(variants) + 1) + "|")
    for cell, row in sorted(cells.items()):
        print(f"| {cell} | " + " | ".join(row.get(v, "–") for v in variants) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "logs/round7_val"))
