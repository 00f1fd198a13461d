"""Preconditioners: function-preserving transforms applied before compression, by name."""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn

from lwcompress.graph import fold_bn
from lwcompress.registry import Registry

PRECONDITIONERS: Registry[Callable[[nn.Module], nn.Module]] = Registry("preconditioner")


@PRECONDITIONERS.register("none")
def no_precondition(model: nn.Module) -> nn.Module:
    """A copy of the model; BatchNorm stays in float after each compressed conv."""
    return copy.deepcopy(model)


@PRECONDITIONERS.register("bn_fold")
def bn_fold(model: nn.Module) -> nn.Module:
    """Fold each BatchNorm into the conv before it, as an integer deployment would."""
    return fold_bn(model)


def precondition(model: nn.Module, name: str) -> nn.Module:
    """A preconditioned copy of `model` (the input model is never modified)."""
    return PRECONDITIONERS.get(name)(model)
