"""The layer phase as the user sees it: a tqdm bar on a terminal (layer i/N, the last layer's name and its error
before -> after, elapsed time, an ETA weighted by layer size) and one line per layer in the run's log file
(`<run dir>/<job>.log`), so a run on a cluster or under multirun stays quiet on the console but leaves a trace."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

from lwcompress.layerwise import LayerResult

log = logging.getLogger("lwcompress")


def duration(seconds: float | None) -> str:
    """h:mm:ss or m:ss; '?' before anything is known."""
    if seconds is None:
        return "?"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Bar(tqdm):
    """tqdm with one more field for its bar_format, `{last}`: the last finished layer and the times."""

    last = ""

    @property
    def format_dict(self) -> dict:
        return {**super().format_dict, "last": self.last}


class LayerDisplay:
    """A `lwcompress.layerwise.LayerProgress`: the bar (when `bar`) and the log lines of the layer phase.

    The ETA is the time per unit of cost so far (a layer's cost grows with its weights) times the cost left; reused
    layers (a resumed run) count as done and are said once, in one line on the console and in the log.
    """

    def __init__(self, bar: bool, store: str = "the layer store") -> None:
        self.show = bar
        self.store = store
        self.bar: _Bar | None = None

    def begin(self, names: list[str], costs: list[float], reused: list[bool]) -> None:
        self.total, self.reused = len(names), sum(reused)
        self.done = self.reused
        self.cost = dict(zip(names, costs, strict=True))
        self.left = sum(c for c, r in zip(costs, reused, strict=True) if not r)
        self.spent = 0.0
        self.start = time.perf_counter()
        if self.reused:
            line = f"resuming: {self.reused} of {self.total} layers reused from {self.store}"
            print(line, file=sys.stderr)
            log.info(line)
        self.bar = _Bar(total=self.total, initial=self.done, desc=f"layer {self.done}/{self.total}",
                        bar_format="{desc} |{bar:20}| {last}", disable=not self.show, file=sys.stderr,
                        dynamic_ncols=True)  # fmt: skip

    def layer_done(self, result: LayerResult) -> None:
        self.done += 1
        cost = self.cost.get(result.name, 0.0)
        self.spent, self.left = self.spent + cost, self.left - cost
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.spent * max(0.0, self.left) if self.spent > 0 else None
        change = f"error {result.rtn_error:.2e} -> {result.error:.2e}"
        change += " (kept its start)" if result.reverted else ""
        log.info(f"layer {self.done}/{self.total} {result.name}: {change}, {result.wall_s:.1f} s; "
                 f"elapsed {duration(elapsed)}, ETA {duration(eta)}")  # fmt: skip
        if self.bar is not None:
            self.bar.set_description_str(f"layer {self.done}/{self.total}", refresh=False)
            self.bar.last = f"{result.name}: {change} | {duration(elapsed)} elapsed, ETA {duration(eta)}"
            self.bar.update(1)

    def end(self) -> None:
        if self.bar is not None:
            self.bar.close()
        log.info(f"layer phase: {self.total - self.reused} layers run in {duration(time.perf_counter() - self.start)}"
                 f", {self.reused} reused")  # fmt: skip
