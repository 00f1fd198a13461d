"""A round's validation runs (round7_val.sh and round7_steps.sh; round8_coarse.sh) as one markdown table: a row per
model x cell, a column per variant (`_s1`: seed 1), top-1 % on the validation split and the compression's wall
seconds (images included where the run made them), and the default's round-to-nearest start.

    python experiments/probes/round7_collect.py [logs/round7_val | logs/round8_coarse]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def main(root: Path) -> None:
    cells: dict[str, dict[str, str]] = defaultdict(dict)
    for path in sorted(root.glob("*/*/**/summary.json")):
        variant, cell = path.relative_to(root).parts[:2]
        s = json.loads(path.read_text())
        row = cells[cell.rsplit("_", 1)[0]]
        row[variant] = f"{s['top1']:.2f} ({s['compress_wall_s']:.0f} s)"
        if variant == "default" and s.get("rtn_top1") is not None:  # the default's round-to-nearest start
            row["RTN start"] = f"{s['rtn_top1']:.2f}"
    variants = sorted({v for row in cells.values() for v in row})
    print("| model / cell | " + " | ".join(variants) + " |")
    print("|---" * (len(variants) + 1) + "|")
    for cell, row in sorted(cells.items()):
        print(f"| {cell} | " + " | ".join(row.get(v, "–") for v in variants) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "logs/round7_val"))
