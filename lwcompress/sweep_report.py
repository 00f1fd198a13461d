"""`lwcompress-report`: the runs of one or more sweeps as a comparison table and plots, without W&B.

Every compress run leaves a summary.json in its Hydra run dir. This reads them all (`report.collect_summaries`),
makes one row per (model, method) — the method named by `--by` keys — and one column per compressor setting
("W4A4", "W32A32 70% uniform"), and writes into `--out` (default: the first sweep dir):

- report.md: top-1 % of each cell as mean ± std (n) over its runs, which should differ only in their seed (a note
  names any other config key that varies inside a cell), next to FP32 and the evaluation split; also printed;
- top1_vs_bits.png, top1_vs_sparsity.png, top1_vs_compute.png: one panel per model, each only when the runs have
  something to show (a line on stdout says why one was skipped).

Run dirs that have `.hydra/` but no summary.json (crashed or unfinished jobs) are counted and listed, so a missing
seed never passes silently as a smaller n. A sweep dir without any run is an error (exit code 2).

    lwcompress-report logs/layerwise_table/<time> --by layerwise.mode,generator.name,preconditioner.name --wall
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lwcompress import io
from lwcompress.report import collect_summaries, find_named, lookup

Summary = dict[str, Any]
Cells = dict[tuple[str, str], dict[str, list[Summary]]]

# What tells layer-wise runs apart: the compressor, the layer-input generator (None where none is used, RTN) and
# independent vs sequential layer runs.
DEFAULT_BY = "compressor.name,generator,layerwise.mode"
# Config keys (and their subkeys) that may differ between the runs of one cell without changing what was measured.
NOT_A_METHOD = (
    "seed",
    "threads",
    "task_name",
    "paths",
    "logger",
    "trainer.enable_progress_bar",
    "save_model",
    "real_diagnostics",
    "eval_fp",
    "eval_rtn",
)
# Swept keys the setting column already shows (W4A4, W32A32 70% uniform, 2:4): never a method of their own.
IN_SETTING = ("compressor.wbits", "compressor.abits", "compressor.sparsity", "compressor.allocation",
              "compressor.pattern", "compressor.budget.wbits", "compressor.budget.bytes", "compressor.budget.abits",
              "compressor.budget.allocation")  # fmt: skip
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">")
MAX_LISTED = 10


class NoRuns(Exception):
    """A sweep dir without any run (no summary.json, no Hydra run dir): most likely a wrong path."""


@dataclass
class Sweep:
    """What the sweep dirs hold: finished compress runs, run dirs without summary.json, other jobs' summaries."""

    runs: list[Summary] = field(default_factory=list)
    unfinished: list[Path] = field(default_factory=list)
    other: int = 0  # summary.json files without a compressed top-1 (pretraining jobs): not compared


def find_runs(dirs: Sequence[str | Path]) -> Sweep:
    """Every run under `dirs` (each run once, should the dirs overlap); raises NoRuns naming a dir that holds none."""
    sweep = Sweep()
    seen: set[Path] = set()
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise NoRuns(f"{root}: not a directory")
        summaries = collect_summaries(root)
        hydra_dirs = sorted(p.parent for p in find_named(root, ".hydra") if p.is_dir())
        if not summaries and not hydra_dirs:
            raise NoRuns(f"{root}: no runs (no summary.json, no .hydra/ run dir)")
        summaries = [s for s in summaries if Path(s["run_dir"]).resolve() not in seen]
        hydra_dirs = [p for p in hydra_dirs if p.resolve() not in seen]
        seen |= {Path(s["run_dir"]).resolve() for s in summaries} | {p.resolve() for p in hydra_dirs}
        sweep.runs += [s for s in summaries if s.get("top1") is not None and "model" in s]
        sweep.other += sum(1 for s in summaries if s.get("top1") is None or "model" not in s)
        sweep.unfinished += [p for p in hydra_dirs if not (p / "summary.json").is_file()]
    return sweep


def setting(s: Summary) -> str:
    """A run's column: the compressor's own label when recorded ("W4A4 2:4"), else its bits."""
    return s.get("setting") or f"W{s.get('wbits') or 32}A{s.get('abits') or 32}"


def setting_order(col: str) -> tuple:
    """Quantized before float weights, then wider bits first, then denser: W8A8, W4A4, W3A8, ..., W32A32 70%."""
    m = re.match(r"W(\d+)A(\d+)\s*(.*)", col)
    if not m:
        return (True, 0, 0, 0.0, col)
    w, a, rest = int(m[1]), int(m[2]), m[3]
    pct = re.match(r"([\d.]+)%", rest)
    return (w == 32, -w, -a, float(pct[1]) if pct else 0.0, rest)


def key_label(key: str) -> str:
    """A --by key's short name: its last part, or the group of `<group>.name` (preconditioner.name: preconditioner)."""
    parts = key.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def method(s: Summary, by: Sequence[str]) -> str:
    """A run's row label: "compressor=quant generator=propagated mode=sequential"."""
    return " ".join(f"{key_label(k)}={lookup(s, k)}" for k in by)


def natural(text: str) -> tuple:
    """Sort key that orders numbers inside names by value: segments=8 before segments=64."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _seconds(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def uncached_wall_s(s: Summary) -> float:
    """A run's compression seconds with the images it reused from the cache counted at what they cost to make: what
    the run would have taken with nothing cached."""
    return float(s["compress_wall_s"]) + float(s.get("generate_reused_s") or 0.0)


def format_cell(runs: Sequence[Summary], wall: bool = False) -> str:
    """The top-1 of a cell's runs: `91.86` for one, `92.00 ± 0.11 (3)` for several; with `wall` their mean
    compression seconds after it, `(29 s, 1.2 generating)`; `–` for an empty cell. Images a run reused from the
    cache count what they cost when they were made (`generate_reused_s`), so cached and uncached runs compare."""
    if not runs:
        return "–"
    top1 = [float(s["top1"]) for s in runs]
    mu, sd = mean_std(top1)
    text = f"{mu:.2f}" if len(top1) == 1 else f"{mu:.2f} ± {sd:.2f} ({len(top1)})"
    reused = [float(s.get("generate_reused_s") or 0.0) for s in runs]
    walls = [uncached_wall_s(s) for s in runs if s.get("compress_wall_s") is not None]
    if wall and walls:
        made = [float(s.get("generate_wall_s") or 0.0) for s in runs]
        generating = statistics.fmean(m + r for m, r in zip(made, reused, strict=True))
        text += f" ({_seconds(statistics.fmean(walls))} s"
        text += f", {_seconds(generating)} generating)" if generating >= 0.5 else ")"
    return text


def column_of(s: Summary, columns: str | None) -> str:
    """A run's column: the value of the `--columns` key, or its compressor setting."""
    return setting(s) if columns is None else str(lookup(s, columns))


def group(runs: Iterable[Summary], by: Sequence[str], columns: str | None = None) -> Cells:
    """(model, method) -> column -> the runs of that cell."""
    cells: Cells = defaultdict(lambda: defaultdict(list))
    for s in runs:
        cells[(str(s["model"]), method(s, by))][column_of(s, columns)].append(s)
    return cells


def _flat(node: object, prefix: str = "") -> dict[str, str]:
    if isinstance(node, dict):
        return {k: v for key, child in node.items() for k, v in _flat(child, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): json.dumps(node, sort_keys=True, default=str)}


def confounders(cells: Cells) -> list[str]:
    """Config keys that vary between the runs of some cell besides the seed (and keys set to it, like
    generator.seed = ${seed}): that cell's mean is not over seeds.

    Only keys every run of the cell has count: a key missing from some (a summary written before it existed)
    says nothing about whether the runs differ."""
    found: set[str] = set()
    for row in cells.values():
        for runs in row.values():
            flats = [_flat(s.get("config", {})) for s in runs]
            for key in set(flats[0]).intersection(*flats[1:]):
                ignored = any(key == p or key.startswith(p + ".") for p in NOT_A_METHOD)
                follows_seed = all(f.get(key) == f.get("seed") for f in flats)  # generator.seed: ${seed}
                if not ignored and not follows_seed and len({f.get(key) for f in flats}) > 1:
                    found.add(key)
    return sorted(found)


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _listed(paths: Sequence[Path]) -> str:
    more = f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else ""
    return ", ".join(str(p) for p in paths[:MAX_LISTED]) + more


def markdown(sweep: Sweep, by: Sequence[str], wall: bool = False, columns: str | None = None) -> str:
    """The report: the split line, one table row per (model, method) with FP32 and one column per setting (or per
    value of the `columns` key, in the order of the first run dirs that show them: a sweep's job order), notes."""
    cells = group(sweep.runs, by, columns)
    if columns is None:
        cols = sorted({setting(s) for s in sweep.runs}, key=setting_order)
    else:
        in_order = sorted(sweep.runs, key=lambda s: natural(str(s.get("run_dir", ""))))
        cols = list(dict.fromkeys(column_of(s, columns) for s in in_order))
    fp: dict[str, list[float]] = defaultdict(list)
    for s in sweep.runs:
        if s.get("fp_top1") is not None:
            fp[str(s["model"])].append(float(s["fp_top1"]))
    split = ", ".join(sorted({str(s.get("eval_split", "test")) for s in sweep.runs}))
    lines = [f"top-1 % on the {split} split; FP32 is the uncompressed model."]
    if wall:
        lines[0] += " (N s): mean compression wall seconds (of which generating layer inputs)."
    lines += ["", "| model | method | FP32 | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for (model, name), row in sorted(cells.items(), key=lambda item: (item[0][0], natural(item[0][1]))):
        fp_cell = f"{statistics.fmean(fp[model]):.2f}" if fp[model] else "–"
        row_cells = " | ".join(format_cell(row.get(c, []), wall) for c in cols)
        lines.append(f"| {model} | {name} | {fp_cell} | {row_cells} |")
    notes = []
    if sweep.unfinished:
        notes.append(f"{_runs(len(sweep.unfinished))} without summary.json: {_listed(sweep.unfinished)}")
    mixed = confounders(cells)
    if mixed:
        notes.append(f"note: some cells mix runs that differ in more than the seed ({', '.join(mixed)}); add to --by")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def sweep_by(swept: Iterable[str]) -> list[str]:
    """The method keys for a sweep's own table: the defaults plus each swept config key that neither the setting
    column, the model column nor the seed already shows (config groups count by their name: generator=...)."""
    by = DEFAULT_BY.split(",")
    for key in (k.lstrip("+~") for k in swept):
        if "/" in key or key in ("model", "seed") or key in IN_SETTING or key.startswith(NOT_A_METHOD):
            continue
        key = key if "." in key or key in by else f"{key}.name"
        if key not in by:
            by.append(key)
    return by


def sweep_table(sweep_dir: str | Path, swept: Iterable[str] = ()) -> str | None:
    """A finished sweep's table (`markdown`, methods told apart by `sweep_by(swept)`), or None without runs."""
    try:
        sweep = find_runs([sweep_dir])
    except NoRuns:
        return None
    return markdown(sweep, sweep_by(swept)) if sweep.runs else None


# --- plots ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    color: str
    marker: str


@dataclass(frozen=True)
class Roles:
    """How the plots tell runs apart: `method` (one colour each, named in the legend) and `panel` (one subplot each).
    Without --columns the methods are the --by rows and the panels the models; with --columns (a key such as
    labels.method) the column values are the methods and each (model, row) gets its own panel, e.g. one per cell."""

    method: Callable[[Summary], str]
    panel: Callable[[Summary], str]


def differing(runs: Sequence[Summary], keys: Sequence[str]) -> Callable[[Summary], str]:
    """A run's label over `keys`, naming only the keys whose values differ between `runs` and, of those, only the
    ones the run sets (no `generator=None` on a round-to-nearest run)."""
    varying = [k for k in keys if len({json.dumps(lookup(s, k), sort_keys=True, default=str) for s in runs}) > 1]

    def label(s: Summary) -> str:
        return " ".join(f"{key_label(k)}={v}" for k in varying if (v := lookup(s, k)) is not None) or "all runs"

    return label


def plot_roles(runs: Sequence[Summary], by: Sequence[str], columns: str | None = None) -> Roles:
    """The plots' methods and panels for a report over `by` rows and `columns` (see Roles)."""
    rows = differing(runs, by)
    if columns is None:
        return Roles(method=rows, panel=lambda s: str(s["model"]))
    several = len({rows(s) for s in runs}) > 1
    return Roles(method=lambda s: str(lookup(s, columns)),
                 panel=lambda s: f"{s['model']}, {rows(s)}" if several else str(s["model"]))  # fmt: skip


def styles(runs: Iterable[Summary], roles: Roles) -> dict[str, Style]:
    """One colour (and marker, for the scatter) per method, the same in every plot: tab10 up to 10 methods, tab20
    up to 20."""
    names = sorted({roles.method(s) for s in runs}, key=natural)
    palette, size = ("tab10", 10) if len(names) <= 10 else ("tab20", 20)
    return {m: Style(_color(palette, i % size, size), MARKERS[i % len(MARKERS)]) for i, m in enumerate(names)}


def _color(palette: str, i: int, size: int) -> Any:
    import matplotlib

    return matplotlib.colormaps[palette](i / size + 0.5 / size)


def _sparse(s: Summary) -> bool:
    return (s.get("sparsity") or 0.0) > 0.0


def _by_panel(runs: Iterable[Summary], roles: Roles) -> dict[str, list[Summary]]:
    """The runs of each panel, panels in the order of the table's settings (W8A8 before W4A4 before W2A4) per model."""
    out: dict[str, list[Summary]] = defaultdict(list)
    for s in runs:
        out[roles.panel(s)].append(s)
    order = {title: (str(group[0]["model"]), min(setting_order(setting(s)) for s in group), natural(title))
             for title, group in out.items()}  # fmt: skip
    return dict(sorted(out.items(), key=lambda item: order[item[0]]))


def _fp_line(ax: Any, runs: Sequence[Summary]) -> None:
    fp = [float(s["fp_top1"]) for s in runs if s.get("fp_top1") is not None]
    if fp:
        ax.axhline(statistics.fmean(fp), color="gray", linestyle="--", linewidth=1, label="FP32")


def _panels(titles: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """A grid of up to 4 panels a row, one per title; unused grid cells hidden."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = min(4, len(titles))
    nrows = math.ceil(len(titles) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    flat = list(axes.flat)
    for title, ax in zip(titles, flat, strict=False):
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("top-1 %")
        ax.grid(alpha=0.3)
    for ax in flat[len(titles) :]:
        ax.set_visible(False)
    return fig, dict(zip(titles, flat, strict=False))


def _save(fig: Any, path: Path) -> Path:
    """One legend under the panels, then write to a temp name in the same folder and rename (atomic)."""
    import matplotlib.pyplot as plt

    legend: dict[str, Any] = {}
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    if "FP32" in legend:
        legend["FP32"] = legend.pop("FP32")  # the reference line last, after the methods
    fig.tight_layout()
    fig.legend(list(legend.values()), list(legend), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=min(4, len(legend)) or 1, fontsize=8, frameon=False)  # fmt: skip
    try:
        return io.save_figure(path, fig, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)


def _points(runs: Iterable[Summary], x: Callable[[Summary], float]) -> list[tuple[float, float, float]]:
    """(x, mean top-1, std) per distinct setting of `runs`, sorted by x (x averaged over the setting's runs)."""
    by_setting: dict[str, list[Summary]] = defaultdict(list)
    for s in runs:
        by_setting[setting(s)].append(s)
    points = []
    for group_runs in by_setting.values():
        mu, sd = mean_std([float(s["top1"]) for s in group_runs])
        points.append((statistics.fmean(x(s) for s in group_runs), mu, sd))
    return sorted(points)


def plot_bits(path: Path, runs: Sequence[Summary], roles: Roles) -> str | None:
    """Top-1 vs weight bits, one panel per model (the bits are the x axis, whatever the rows), one colour per method,
    one marker per activation width (named once in the legend), error bars = std over seeds, FP32 dashed. Pruned
    runs are left out (top1_vs_sparsity). Returns why it was skipped, or None once written."""
    dense = [s for s in runs if not _sparse(s)]
    if len({s.get("wbits") or 32 for s in dense}) < 2:
        return "fewer than two weight bit widths among the unpruned runs"
    style = styles(runs, roles)
    roles = replace(roles, panel=lambda s: str(s["model"]))
    abits = sorted({s.get("abits") or 32 for s in dense}, reverse=True)
    marker = {a: MARKERS[i % len(MARKERS)] for i, a in enumerate(abits)}
    panels = _by_panel(dense, roles)
    fig, axes = _panels(list(panels))
    for title, panel_runs in panels.items():
        ax = axes[title]
        series: dict[tuple[str, int], list[Summary]] = defaultdict(list)
        for s in panel_runs:
            series[(roles.method(s), s.get("abits") or 32)].append(s)
        for (name, a), group_runs in sorted(series.items()):
            xs, ys, err = zip(*_points(group_runs, lambda s: float(s.get("wbits") or 32)), strict=True)
            ax.errorbar(xs, ys, yerr=err, color=style[name].color, marker=marker[a], capsize=3, label=name)
        _fp_line(ax, panel_runs)
        ax.set_xlabel("weight bits")
        ax.set_xticks(sorted({s.get("wbits") or 32 for s in panel_runs}))
    if len(abits) > 1:  # the markers' meaning, once
        first = next(iter(axes.values()))
        for a in abits:
            first.plot([], [], color="gray", marker=marker[a], linestyle="none", label=f"A{a}")
    _save(fig, path)
    return None


def plot_sparsity(path: Path, runs: Sequence[Summary], roles: Roles) -> str | None:
    """Top-1 vs measured sparsity, one colour per method (and one line per bit width, where pruned runs also
    quantize), each with its closed-form start dotted (for layer-wise pruning: magnitude pruning, the same mask),
    FP32 dashed gray."""
    if not any(_sparse(s) for s in runs):
        return "no run has sparsity > 0"
    style = styles(runs, roles)
    sparse_methods = {(roles.panel(s), roles.method(s)) for s in runs if _sparse(s)}
    panels = _by_panel((s for s in runs if (roles.panel(s), roles.method(s)) in sparse_methods), roles)
    fig, axes = _panels(list(panels))
    starts = False
    for title, panel_runs in panels.items():
        ax = axes[title]
        series: dict[tuple[str, str], list[Summary]] = defaultdict(list)
        for s in panel_runs:
            series[(roles.method(s), f"W{s.get('wbits') or 32}A{s.get('abits') or 32}")].append(s)
        several_bits = len({bits for _, bits in series}) > 1
        for (name, bits), group_runs in sorted(series.items()):
            label = f"{name}, {bits}" if several_bits else name
            xs, ys, err = zip(*_points(group_runs, lambda s: float(s.get("sparsity") or 0.0)), strict=True)
            ax.errorbar(xs, ys, yerr=err, color=style[name].color, marker=style[name].marker, capsize=3, label=label)
            start = [s for s in group_runs if s.get("rtn_top1") is not None]
            if start:
                sx, sy, _ = zip(*_points([{**s, "top1": s["rtn_top1"]} for s in start],
                                         lambda s: float(s.get("sparsity") or 0.0)), strict=True)  # fmt: skip
                ax.plot(sx, sy, color=style[name].color, marker="x", linestyle=":")
                starts = True
        _fp_line(ax, panel_runs)
        ax.set_xlabel("sparsity (pruned fraction of conv/linear weights)")
    if starts:
        next(iter(axes.values())).plot([], [], color="gray", marker="x", linestyle=":", label="closed-form start")
    _save(fig, path)
    return None


def plot_compute(path: Path, runs: Sequence[Summary], roles: Roles) -> str | None:
    """Top-1 vs compression wall seconds (log x), one point per run, one colour and marker per method."""
    from matplotlib.ticker import NullFormatter

    timed = [s for s in runs if (s.get("compress_wall_s") or 0.0) > 0.0]
    if not timed:
        return "no run records compress_wall_s > 0"
    style = styles(runs, roles)
    panels = _by_panel(timed, roles)
    fig, axes = _panels(list(panels))
    for title, panel_runs in panels.items():
        ax = axes[title]
        per_method: dict[str, list[Summary]] = defaultdict(list)
        for s in panel_runs:
            per_method[roles.method(s)].append(s)
        for name, group_runs in sorted(per_method.items(), key=lambda item: natural(item[0])):
            ax.scatter([s["compress_wall_s"] for s in group_runs], [s["top1"] for s in group_runs],
                       color=style[name].color, marker=style[name].marker, label=name)  # fmt: skip
        _fp_line(ax, panel_runs)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # the decades only: minor labels overprint each other
        ax.set_xlabel("compress wall s (log)")
    _save(fig, path)
    return None


PLOTS: dict[str, Callable[[Path, Sequence[Summary], Roles], str | None]] = {
    "top1_vs_bits.png": plot_bits,
    "top1_vs_sparsity.png": plot_sparsity,
    "top1_vs_compute.png": plot_compute,
}


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: print and write report.md, write the plots; 2 on a dir without runs."""
    parser = argparse.ArgumentParser(
        prog="lwcompress-report",
        description="Compare the runs of one or more sweeps (their summary.json files) without W&B: a markdown table "
        "of top-1 mean ± std over seeds per (model, method) and setting, and plots.",
        epilog="Writes report.md, top1_vs_bits.png, top1_vs_sparsity.png and top1_vs_compute.png (each plot only "
        "when the runs have something to show). Exit code 2 when a SWEEP_DIR holds no run.",
    )
    parser.add_argument("dirs", nargs="+", type=Path, metavar="SWEEP_DIR", help="a multirun dir, or any dir of runs")
    parser.add_argument(
        "--by",
        default=DEFAULT_BY,
        metavar="KEYS",
        help=f"comma-separated summary or dotted config keys that name a row's method (default: {DEFAULT_BY})",
    )
    parser.add_argument(
        "--columns",
        metavar="KEY",
        help="a summary or dotted config key whose values make the columns (default: the compressor setting, W4A4); "
        "the plots then give each of its values a colour and each row (e.g. a cell) its own panel",
    )
    parser.add_argument("--wall", action="store_true", help="add each cell's mean compress_wall_s (and generating)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="where the report goes (default: the first SWEEP_DIR)")
    args = parser.parse_args(argv)
    by = [k.strip() for k in args.by.split(",") if k.strip()]
    if not by:
        print("error: --by needs at least one key", file=sys.stderr)
        return 2
    try:
        sweep = find_runs(args.dirs)
    except NoRuns as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not sweep.runs:
        why = [f"error: {', '.join(str(d) for d in args.dirs)}: no compress run with a summary.json"]
        if sweep.unfinished:
            why.append(f"{_runs(len(sweep.unfinished))} without summary.json: {_listed(sweep.unfinished)}")
        if sweep.other:
            why.append(f"{sweep.other} summary.json of other jobs (pretraining)")
        print("; ".join(why), file=sys.stderr)
        return 2
    text = markdown(sweep, by, args.wall, args.columns)
    print(text)
    if sweep.other:
        print(f"left out {sweep.other} summary.json of other jobs (pretraining: no compressed top-1)")
    out = args.out or args.dirs[0]
    print(f"wrote {io.write_text(out / 'report.md', text)}")
    drawn = plot_roles(sweep.runs, by, args.columns)
    for name, plot in PLOTS.items():
        skipped = plot(out / name, sweep.runs, drawn)
        print(f"skipped {name}: {skipped}" if skipped else f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
