"""What the layer phase tells its caller while it runs: a hook the caller implements (the CLI's console display,
a notebook's own), so that the core stays free of consoles and log files."""

from __future__ import annotations

from typing import Protocol

from lwcompress.layerwise.run import LayerResult


class LayerProgress(Protocol):
    """Called by `lwcompress.layerwise.learn` in this process's order of work."""

    def begin(self, names: list[str], costs: list[float], reused: list[bool]) -> None:
        """The layers this process will finish (in order), their relative cost (for an ETA), and which of them
        come from the layer store of an earlier, interrupted run."""

    def layer_done(self, result: LayerResult) -> None:
        """A layer that was run (not reused) has finished."""

    def end(self) -> None:
        """Every layer of this process has finished."""
