"""The layer phase's progress: what the console shows and what the run's log keeps."""

from __future__ import annotations

import io
import logging

import pytest

from lwcompress.layerwise import LayerResult
from lwcompress.progress import LayerDisplay, duration


def result(name: str, rtn: float = 2e-3, error: float = 1e-3, reverted: bool = False) -> LayerResult:
    return LayerResult(name, rtn, error, None, None, reverted, wall_s=1.5)


def test_duration_format() -> None:
    assert [duration(None), duration(5), duration(65.4), duration(3725)] == ["?", "0:05", "1:05", "1:02:05"]


def test_log_line_per_layer_with_errors_and_size_weighted_eta(caplog: pytest.LogCaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    clock = iter([100.0, 110.0, 120.0, 130.0])
    monkeypatch.setattr("lwcompress.progress.time.perf_counter", lambda: next(clock))
    display = LayerDisplay(bar=False)
    with caplog.at_level(logging.INFO, logger="lwcompress"):
        display.begin(["a", "b", "c"], [1.0, 3.0, 6.0], [False, False, False])
        display.layer_done(result("a"))  # 10 s for 1 cost unit: 9 units left
        display.layer_done(result("b", reverted=True))  # 20 s for 4 units: 6 left -> 30 s
        display.end()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "layer 1/3 a: error 2.00e-03 -> 1.00e-03, 1.5 s; elapsed 0:10, ETA 1:30"
    assert lines[1] == "layer 2/3 b: error 2.00e-03 -> 1.00e-03 (kept its start), 1.5 s; elapsed 0:20, ETA 0:30"
    assert lines[2] == "layer phase: 3 layers run in 0:30, 0 reused"


def test_resume_says_how_many_layers_were_reused(caplog: pytest.LogCaptureFixture,
                                                 capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    display = LayerDisplay(bar=False, store="run/layers")
    with caplog.at_level(logging.INFO, logger="lwcompress"):
        display.begin(["a", "b", "c"], [1.0, 1.0, 1.0], [True, True, False])
        display.layer_done(result("c"))
        display.end()
    said = "resuming: 2 of 3 layers reused from run/layers"
    assert said in capsys.readouterr().err
    messages = [r.getMessage() for r in caplog.records]
    assert (
        messages[0] == said
        and messages[1].startswith("layer 3/3 c:")
        and messages[2].startswith("layer phase: 1 layers run in")
    )
    assert messages[2].endswith(", 2 reused")


def test_bar_shows_layer_count_name_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("lwcompress.progress.sys.stderr", stream)
    display = LayerDisplay(bar=True)
    display.begin(["conv1", "fc"], [1.0, 1.0], [False, False])
    display.layer_done(result("conv1"))
    display.end()
    shown = stream.getvalue().replace("\r", "\n")
    assert "layer 0/2 |" in shown
    assert "layer 1/2 |" in shown and "conv1: error 2.00e-03 -> 1.00e-03 |" in shown and "ETA" in shown


def test_no_bar_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("lwcompress.progress.sys.stderr", stream)
    display = LayerDisplay(bar=False)
    display.begin(["conv1"], [1.0], [False])
    display.layer_done(result("conv1"))
    display.end()
    assert stream.getvalue() == ""


def test_layer_plot_floors_exact_layers_names_the_baseline_and_keeps_the_legend_off_the_points() -> None:
    from matplotlib.pyplot import close

    from lwcompress.report import layer_error_figure

    results = [result("conv1", rtn=1e-14, error=1e-15), result("conv2", rtn=0.3, error=0.1), result("fc", 0.05, 0.02)]
    fig = layer_error_figure(results, "resnet20 W32A32 70% uniform", baseline="magnitude")
    (ax,) = fig.axes
    low, high = ax.get_ylim()
    assert low > 1e-6 and high >= 0.3  # the 1e-14 layer does not stretch the axis over ten decades
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["magnitude (synthetic)", "layer-wise (synthetic)"] and labels[-1].startswith("< 3e-05")
    box = ax.get_legend().get_window_extent().transformed(ax.transAxes.inverted())
    assert box.x0 > 1.0  # beside the axes
    close(fig)
