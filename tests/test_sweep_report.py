"""lwcompress-report on a hand-made sweep: cell statistics, row grouping, plots, crashed runs, exit codes."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from lwcompress import sweep_report
from lwcompress.sweep_report import find_runs, format_cell, main, markdown, plot_compute, plot_roles, plot_sparsity

BIN = Path(sys.executable).parent
FP = {"resnet20": 92.38, "mobilenetv2_small": 92.10}
BITS = {"W8A8": (8, 8), "W4A4": (4, 4), "W3A8": (3, 8)}
# (compressor, generator used, layerwise.mode) -> drop from FP32 per setting
METHODS = {
    ("quant", "propagated", "sequential"): {"W8A8": 0.1, "W4A4": 0.9, "W3A8": 0.6},
    ("rtn", None, "sequential"): {"W8A8": 0.2, "W4A4": 2.1, "W3A8": 1.5},
}
SEEDS = (0, 1, 2)
QUANT = "compressor=quant generator=propagated mode=sequential"
RTN = "compressor=rtn generator=None mode=sequential"
PRUNE = "compressor=prune generator=propagated mode=sequential"
RTN_W4A4 = ("mobilenetv2_small", "rtn", "W4A4")


def top1_of(model: str, compressor: str, setting: str, seed: int) -> float:
    """A made-up but distinct top-1 per run, so a wrong grouping changes the numbers."""
    drop = METHODS[(compressor, "propagated" if compressor == "quant" else None, "sequential")][setting]
    return round(FP[model] - drop - 0.13 * seed + (0.07 if model == "resnet20" else 0.0) * seed**2, 2)


def write_run(run_dir: Path, summary: dict) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps(summary))


def summary(model: str, compressor: str, generator: str | None, setting: str, seed: int, top1: float, **extra) -> dict:
    wbits, abits = BITS.get(setting, (None, None))
    return {
        "model": model,
        "compressor": compressor,
        "generator": generator,
        "setting": setting,
        "wbits": wbits,
        "abits": abits,
        "eval_split": "test",
        "fp_top1": FP[model],
        "top1": top1,
        "size_bits": 1000,
        "fp_size_bits": 32000,
        "sparsity": extra.pop("sparsity", 0.0),
        "compress_wall_s": 10.0 + 5 * seed if compressor != "rtn" else 0.1,
        "generate_wall_s": 1.0 if generator else 0.0,
        "eval_wall_s": 2.0,
        "command": f"lwcompress model={model}",
        "config": {
            "seed": seed,
            "threads": 1,
            "model": {"name": model},
            "compressor": {"name": compressor, "wbits": wbits, "abits": abits, "sparsity": 0.0},
            "generator": {"name": generator or "none", "seed": seed},  # ${seed} in the real config: not a method
            "layerwise": {"mode": "sequential", "seed": seed},
            "preconditioner": {"name": "bn_fold"},
        },
        **extra,
    }


def make_sweep(root: Path, pruning: bool = True, crashed: bool = True) -> Path:
    """Two models x two methods x W8A8/W4A4/W3A8 x 3 seeds as Hydra job dirs; one pruning run; one crashed job."""
    job = 0
    for model in FP:
        for (compressor, generator, _), drops in METHODS.items():
            for setting in drops:
                for seed in SEEDS:
                    top1 = top1_of(model, compressor, setting, seed)
                    write_run(root / str(job), summary(model, compressor, generator, setting, seed, top1))
                    job += 1
    if pruning:
        prune = summary("resnet20", "prune", "propagated", "W32A32 70% uniform", 0, 91.63, sparsity=0.7, rtn_top1=14.87)
        write_run(root / "prune" / "0", prune)
    if crashed:
        (root / "crashed" / ".hydra").mkdir(parents=True)
    return root


def parse(report: str) -> tuple[list[str], dict[tuple[str, str], dict[str, str]]]:
    """The markdown table of a report: its header and {(model, method): {column: cell}}."""
    lines = [line for line in report.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[(cells[0], cells[1])] = dict(zip(header[2:], cells[2:], strict=True))
    return header, rows


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The fake sweep reported once through the console script, as a user runs it: (sweep dir, stdout)."""
    sweep = make_sweep(tmp_path_factory.mktemp("sweep"))
    proc = subprocess.run([str(BIN / "lwcompress-report"), str(sweep), "--wall"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return sweep, proc.stdout


def test_cells_are_mean_std_over_seeds(reported: tuple[Path, str]) -> None:
    sweep, stdout = reported
    report = (sweep / "report.md").read_text()  # --out defaults to the sweep dir
    assert report.splitlines()[0].startswith("top-1 % on the test split; FP32 is the uncompressed model.")
    header, rows = parse(report)
    assert header == ["model", "method", "FP32", "W8A8", "W4A4", "W3A8", "W32A32 70% uniform"]
    assert set(rows) == {(m, q) for m in FP for q in (QUANT, RTN)} | {("resnet20", PRUNE)}
    for model in FP:
        for name, compressor in ((QUANT, "quant"), (RTN, "rtn")):
            row = rows[(model, name)]
            assert row["FP32"] == f"{FP[model]:.2f}"
            for setting in BITS:
                values = [top1_of(model, compressor, setting, seed) for seed in SEEDS]
                expected = f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} (3)"
                assert row[setting].startswith(expected + " ("), (model, name, setting, row[setting])
            assert row["W32A32 70% uniform"] == "–"
    # --wall: mean compress seconds (10, 15, 20 -> 15) and the generating part; RTN at 0.1 s has none.
    assert rows[("resnet20", QUANT)]["W4A4"].endswith("(3) (15 s, 1.0 generating)")
    assert rows[("resnet20", RTN)]["W4A4"].endswith("(3) (0.1 s)")
    assert rows[("resnet20", PRUNE)]["W32A32 70% uniform"] == "91.63 (10 s, 1.0 generating)"
    assert rows[("resnet20", PRUNE)]["W4A4"] == "–"
    assert report in stdout  # printed as well as written
    assert "note:" not in report  # every cell differs only in its seed


def test_crashed_runs_are_counted(reported: tuple[Path, str]) -> None:
    sweep, stdout = reported
    line = f"1 run without summary.json: {sweep / 'crashed'}"
    assert line in (sweep / "report.md").read_text().splitlines()
    assert line in stdout.splitlines()


def test_plots_are_pngs(reported: tuple[Path, str]) -> None:
    sweep, stdout = reported
    for name in ("top1_vs_bits.png", "top1_vs_sparsity.png", "top1_vs_compute.png"):
        data = (sweep / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
        assert f"wrote {sweep / name}" in stdout.splitlines()
    assert not list(sweep.glob(".*.tmp"))  # temp files renamed away


def test_by_keys_group_rows(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path, pruning=False, crashed=False)
    runs = find_runs([sweep])
    assert len(runs.runs) == 36 and not runs.unfinished
    assert len(find_runs([sweep, sweep / "0"]).runs) == 36  # overlapping dirs: each run once
    _, rows = parse(markdown(runs, ["compressor.name", "seed"]))
    assert set(rows) == {(m, f"compressor={c} seed={s}") for m in FP for c in ("quant", "rtn") for s in SEEDS}
    assert rows[("mobilenetv2_small", "compressor=rtn seed=2")]["W4A4"] == f"{top1_of(*RTN_W4A4, 2):.2f}"
    # A key that merges two methods into one row: its cells then mix runs that differ in more than the seed.
    report = markdown(runs, ["layerwise.mode"])
    _, rows = parse(report)
    values = [top1_of("resnet20", c, "W4A4", s) for c in ("quant", "rtn") for s in SEEDS]
    expected = f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} (6)"
    assert rows[("resnet20", "mode=sequential")]["W4A4"] == expected
    assert "note: some cells mix runs that differ in more than the seed (compressor.name, generator.name)" in report
    # Without pruned runs there is no sparsity plot, and the caller is told why.
    drawn = plot_roles(runs.runs, ["layerwise.mode"])
    assert plot_sparsity(tmp_path / "s.png", runs.runs, drawn) == "no run has sparsity > 0"
    assert not (tmp_path / "s.png").exists()


def test_a_sweep_dir_assembled_from_links_reports_every_run_once(tmp_path: Path) -> None:
    """A benchmark dir that links in other sweeps (experiments/benchmarks/round6_table.sh) reports the linked runs
    too; a link back up the tree and two links to one sweep neither loop nor count twice."""
    sweep = make_sweep(tmp_path / "earlier", pruning=False, crashed=False)
    linked = tmp_path / "linked"
    linked.mkdir()
    for i, run in enumerate(sorted(p for p in sweep.iterdir() if (p / "summary.json").is_file())):
        (linked / f"run{i}").symlink_to(run)
    (linked / "again").symlink_to(sweep)
    (linked / "up").symlink_to(tmp_path)
    runs = find_runs([linked])
    assert len(runs.runs) == 36 and not runs.unfinished
    made = {p.parent.resolve() for p in sweep.rglob("summary.json")}
    assert {Path(r["run_dir"]).resolve() for r in runs.runs} == made


def test_columns_by_a_key_in_job_order(tmp_path: Path) -> None:
    """--columns pivots: rows by setting, one column per compressor, ordered as the jobs ran (rtn came second)."""
    runs = find_runs([make_sweep(tmp_path, pruning=False, crashed=False)])
    header, rows = parse(markdown(runs, ["setting"], columns="compressor.name"))
    assert header[3:] == ["quant", "rtn"]
    cell = rows[("mobilenetv2_small", "setting=W4A4")]["rtn"]
    values = [top1_of(*RTN_W4A4, s) for s in SEEDS]
    assert cell == f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} (3)"


def test_no_runs_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no runs" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "empty" / "report.md").exists()
    assert main([str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    # Only crashed jobs: nothing to compare, also exit code 2, and they are named.
    (tmp_path / "crashed" / "0" / ".hydra").mkdir(parents=True)
    assert main([str(tmp_path / "crashed")]) == 2
    assert "1 run without summary.json" in capsys.readouterr().err


def test_reused_images_count_what_they_once_cost() -> None:
    """A run that took its distilled images from the cache shows the same wall time as one that made them."""
    made = {"top1": 90.0, "compress_wall_s": 8.0, "generate_wall_s": 3.0}
    reused = {"top1": 90.0, "compress_wall_s": 5.0, "generate_wall_s": 0.0, "generate_reused_s": 3.0}
    assert format_cell([made], wall=True) == format_cell([reused], wall=True) == "90.00 (8.0 s, 3.0 generating)"


def test_a_sweeps_own_table_tells_methods_apart_by_what_it_varied() -> None:
    from lwcompress.sweep_report import DEFAULT_BY, sweep_by

    swept = ["compressor.wbits", "seed", "model", "generator", "preconditioner", "+layerwise.steps", "threads",
             "compressor", "+benchmark/cell", "compressor.budget.wbits", "compressor.rounding"]  # fmt: skip
    assert sweep_by(swept) == [*DEFAULT_BY.split(","), "preconditioner.name", "layerwise.steps", "compressor.rounding"]


def test_plots_name_only_what_differs_one_colour_per_method_one_panel_per_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labels drop keys every run shares (mode=sequential) and keys a run does not set (generator=None on RTN).
    Pivoted as the round-2 report (rows: cells, --columns: methods), every method gets one colour and one legend
    entry, every (model, cell) its own panel: 9 methods x 8 cells x 2 models make 16 panels and 9 + 1 entries."""
    runs = find_runs([make_sweep(tmp_path, pruning=False, crashed=False)]).runs
    drawn = plot_roles(runs, ["compressor.name", "generator", "layerwise.mode"])
    assert {drawn.method(s) for s in runs} == {"compressor=quant generator=propagated", "compressor=rtn"}
    assert {drawn.panel(s) for s in runs} == set(FP)

    methods = ["rtn", "rtn_mse", "rtn_bc", "rtn_mse_bc", "default", "gptq", "distilled", "zeroq", "real"]
    cells = ["w8a8", "w4a4", "w3a8", "w4a4_all", "w3a4", "w3a3", "w2a8", "w2a4"]

    def labelled(model: str, i: int, j: int) -> dict:
        run = {**summary(model, "quant", "propagated", "W4A4", 0, 90.0 - i - j / 10), "compress_wall_s": 1.0 + i}
        run["config"]["labels"] = {"cell": cells[j], "method": methods[i]}
        return run

    pivot = [labelled(model, i, j) for model in FP for i in range(len(methods)) for j in range(len(cells))]
    drawn = plot_roles(pivot, ["labels.cell"], columns="labels.method")
    assert drawn.panel(pivot[0]) == "resnet20, cell=w8a8" and drawn.method(pivot[0]) == "rtn"
    figures = []
    monkeypatch.setattr(sweep_report, "_save", lambda fig, path: figures.append(fig))
    assert plot_compute(tmp_path / "c.png", pivot, drawn) is None
    (fig,) = figures
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 16 and {ax.get_title() for ax in visible} == {f"{m}, cell={c}" for m in FP for c in cells}
    colours = {}
    for ax in visible:
        for collection, label in zip(ax.collections, [t for t in ax.get_legend_handles_labels()[1] if t != "FP32"],
                                     strict=True):  # fmt: skip
            colours.setdefault(label, set()).add(tuple(collection.get_facecolor()[0]))
    assert sorted(colours) == sorted(methods) and all(len(c) == 1 for c in colours.values())
    assert len({next(iter(c)) for c in colours.values()}) == 9  # no colour recycled
