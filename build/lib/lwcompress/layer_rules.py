"""Compose-time check of `compressor.layers`: every pattern must name some layer of the model to compress."""

from __future__ import annotations

import dataclasses

import torch

from lwcompress.compress.config import matches
from lwcompress.data import DATA
from lwcompress.errors import UserError
from lwcompress.graph import analyze
from lwcompress.models import build_model
from lwcompress.schema import CompressJob


def layer_names(job: CompressJob) -> list[str]:
    """The compressible layers' qualified names, as graph analysis reports them (and layers.csv lists them): the
    architecture alone (random weights, no data files read)."""
    dm = DATA.get(job.data.name)(job.data)
    model, _ = build_model(dataclasses.replace(job.model, weights=None), getattr(dm, "num_classes", 10),
                           dm.in_channels)  # fmt: skip
    example = torch.zeros(1, dm.in_channels, dm.image_size, dm.image_size)
    return [info.name for info in analyze(model.eval(), example)]


def check_layer_rules(job: CompressJob) -> None:
    """UserError (one line) for a `compressor.layers` pattern that matches no layer; nothing to check without."""
    if not job.compressor.rules:
        return
    names = layer_names(job)
    for pattern, _ in job.compressor.rules:
        if not any(matches(pattern, name) for name in names):
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise UserError(f"compressor.layers[{pattern!r}] matches no layer of {job.model.name} ({len(names)} "
                            f"layers: {shown}; fnmatch patterns, or re:<regex>)")  # fmt: skip
