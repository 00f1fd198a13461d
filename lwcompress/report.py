"""Human-readable outputs of a run: the closing table and layers.csv."""

from __future__ import annotations

import csv
import io as _io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lwcompress import io

if TYPE_CHECKING:  # annotations only: reading summaries (lwcompress-report) needs neither Lightning nor the layer runs
    from lwcompress.compress import LayerRecord
    from lwcompress.layerwise import LayerResult


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width text table (numbers right-aligned)."""
    cells = [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(items: Sequence[str]) -> str:
        return "  ".join(
            s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(items, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def layer_rows(records: list[LayerRecord], results: list[LayerResult]) -> list[dict[str, Any]]:
    """One row per compressed layer: what was done to it (shape, bits, input grid) and, for learned compressors,
    its relative output error before/after the layer run on synthetic and on real inputs, and its wall time."""
    by_name = {r.name: r for r in results}
    rows = []
    for rec in records:
        row = asdict(rec)
        row["shape"] = "x".join(str(s) for s in rec.shape)
        if rec.name in by_name:
            row.update({k: v for k, v in asdict(by_name[rec.name]).items() if k not in ("name", "losses")})
        rows.append(row)
    return rows


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    return io.write_text(path, buf.getvalue())


def plot_layer_errors(path: str | Path, results: list[LayerResult], title: str, baseline: str = "RTN") -> Path:
    """layers.png: `layer_error_figure`, written atomically."""
    fig = layer_error_figure(results, title, baseline)  # selects the Agg backend before pyplot is imported here
    import matplotlib.pyplot as plt

    try:
        return io.save_figure(path, fig, dpi=100)
    finally:
        plt.close(fig)


def layer_error_figure(results: list[LayerResult], title: str, baseline: str = "RTN") -> Any:
    """Relative output error per layer, the closed-form start (`baseline`: "RTN", "magnitude", ...) vs layer-wise,
    and on real activations when known. Errors far below the largest (a layer left dense and float: ~1e-14) would
    stretch the log axis over ten decades; they are drawn at a floor, marked, and named in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [("rtn_error", f"{baseline} (synthetic)", "o-", "tab:red", 1.0),
              ("error", "layer-wise (synthetic)", "o-", "tab:blue", 1.0)]  # fmt: skip
    if all(r.real_error is not None for r in results):
        series += [("real_rtn_error", f"{baseline} (real)", "x--", "tab:red", 0.6),
                   ("real_error", "layer-wise (real)", "x--", "tab:blue", 0.6)]  # fmt: skip
    values = [float(getattr(r, key)) for r in results for key, *_ in series]
    floor = max(max(values, default=1.0) * 1e-4, 1e-12)
    x = list(range(len(results)))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(results)) + 2.5, 4))
    below = False
    for key, label, style, color, alpha in series:
        ys = [float(getattr(r, key)) for r in results]
        ax.plot(x, [max(y, floor) for y in ys], style, label=label, color=color, alpha=alpha)
        low = [i for i, y in enumerate(ys) if y < floor]
        if low:
            below = True
            ax.plot(low, [floor] * len(low), "v", color=color, alpha=alpha, markersize=9)
    if below:
        ax.plot([], [], "v", color="gray", label=f"< {floor:.0e} (drawn at it)")
    ax.set_yscale("log")
    ax.set_xticks(x, [r.name for r in results], rotation=90, fontsize=7)
    ax.set_ylabel("MSE / Var(target)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)  # beside, never on points
    fig.tight_layout()
    return fig


def collect_summaries(root: str | Path) -> list[dict]:
    """Every summary.json under `root` (a multirun dir, or several), each with its run dir added."""
    return [{**json.loads(p.read_text()), "run_dir": str(p.parent)} for p in find_named(root, "summary.json")]


def find_named(root: str | Path, name: str) -> list[Path]:
    """Every file or dir called `name` under `root`, sorted, through linked dirs too (a sweep dir assembled from links
    to other sweeps' runs); a dir reached twice (a link back up, two links to one run) is read once."""
    found, seen = [], set()
    for top, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        found += [Path(top) / name for n in (*dirs, *files) if n == name]
    return sorted(found)


def lookup(summary: dict, key: str) -> object:
    """A top-level summary key, or a dotted key into its resolved config ("compressor.scale")."""
    if key in summary:
        return summary[key]
    node: object = summary.get("config", {})
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node
