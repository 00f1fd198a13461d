"""Human-readable outputs of a run: the closing table and layers.csv."""

from __future__ import annotations

import csv
import io as _io
import json
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path

from lwcompress import io
from lwcompress.compress import LayerRecord


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width text table (numbers right-aligned)."""
    cells = [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(items: Sequence[str]) -> str:
        return "  ".join(
            s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(items, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def write_layers_csv(path: str | Path, records: list[LayerRecord]) -> Path:
    """One row per compressed layer: name, kind, shape, params, bits and the input range used."""
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(LayerRecord)])
    writer.writeheader()
    for r in records:
        row = asdict(r)
        row["shape"] = "x".join(str(s) for s in r.shape)
        writer.writerow(row)
    return io.write_text(path, buf.getvalue())


def collect_summaries(root: str | Path) -> list[dict]:
    """Every summary.json under `root` (a multirun dir, or several), each with its run dir added."""
    return [{**json.loads(p.read_text()), "run_dir": str(p.parent)} for p in sorted(Path(root).rglob("summary.json"))]


def lookup(summary: dict, key: str) -> object:
    """A top-level summary key, or a dotted key into its resolved config ("compressor.scale")."""
    if key in summary:
        return summary[key]
    node: object = summary.get("config", {})
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node
