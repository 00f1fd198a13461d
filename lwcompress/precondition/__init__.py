"""Preconditioners: what is done to the FP model around quantization, and where each claims to preserve it.

A preconditioner is a `Preconditioner` class, registered by name in PRECONDITIONERS (or an installed plug-in's, or
any subclass by its import path: docs/extending.md), with its settings in its own `config` dataclass. The pipeline
(`lwcompress.api.compress`) calls its three stages in order:

1. `equalize(model, example)`: rewrite the unfolded FP model before graph analysis (so BN statistics, which the
   data-free ranges and generators read, stay consistent with rescaled channels);
2. `fold(model)`: the copy that gets quantized (BatchNorms folded, as a deployed integer model runs);
3. `correct(quantized, model, layers, seed)`: after rounding, adjust the quantized copy in place.

The built-in `DFQ` (Nagel et al., 2019) takes each stage from a flag; its presets are the options bn_fold, cle,
bias_correction and none.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from lwcompress.errors import UserError
from lwcompress.graph import LayerInfo, fold_bn
from lwcompress.precondition.bias_correction import correct_biases, expected_inputs
from lwcompress.precondition.cle import equalize
from lwcompress.registry import Registry

__all__ = [
    "DFQ",
    "DFQConfig",
    "PRECONDITIONERS",
    "Preconditioner",
    "PreconditionerConfig",
    "correct_biases",
    "equalize",
    "expected_inputs",
    "preconditioner",
]


@dataclass
class PreconditionerConfig:
    """What every preconditioner takes: `name` (the registered option, or a class's import path). A
    preconditioner with settings declares a subclass (`Preconditioner.config`)."""

    name: str = "bn_fold"


@dataclass
class DFQConfig(PreconditionerConfig):
    """The DFQ stages, each a flag.

    fold_bn: fold each BatchNorm into the conv before it, as a deployed integer model does (exact).
    cle: cross-layer equalization of conv -> (ReLU) -> conv pairs whose BN output feeds nothing else (exact,
      positive homogeneity); `relu6_to_relu` first turns ReLU6 into ReLU so depthwise chains pair up (changes
      the function where activations exceed 6); `absorb_high_bias` moves beta - 3|gamma| > 0 into the next layer
      (exact only away from zero-padded borders).
    bias_correction: after rounding, add (W - W_q) E[x] to each bias, E[x] from the BN-Gaussian input model.
    """

    fold_bn: bool = True
    cle: bool = False
    relu6_to_relu: bool = False
    absorb_high_bias: bool = False
    bias_correction: bool = False


class Preconditioner:
    """A preconditioner: the three stages of the module docstring, each a no-op or plain BN folding unless a
    subclass overrides it. `config`: its settings, a PreconditionerConfig dataclass (a subclass with its own
    fields where it has some)."""

    config: ClassVar[type[PreconditionerConfig]] = PreconditionerConfig

    def __init__(self, cfg: PreconditionerConfig) -> None:
        if not isinstance(cfg, self.config):
            raise UserError(f"preconditioner={cfg.name} takes a {self.config.__name__}, not a {type(cfg).__name__}")
        self.cfg = cfg

    def equalize(self, model: nn.Module, example: torch.Tensor) -> nn.Module:
        """The FP model (eval mode, BatchNorms unfolded) the rest of the pipeline reads; `model` itself unchanged."""
        return model

    def fold(self, model: nn.Module) -> nn.Module:
        """A copy of `model` ready to quantize (BatchNorms folded; `model` is never modified)."""
        return fold_bn(model)

    def correct(self, quantized: nn.Module, model: nn.Module, layers: list[LayerInfo], seed: int) -> None:
        """After the closed-form rounding: adjust `quantized` (the folded, wrapped copy) in place; `model` is the
        equalized FP model and `layers` its analysis."""


PRECONDITIONERS: Registry[type[Preconditioner]] = Registry(
    "preconditioner", base=Preconditioner, config=PreconditionerConfig
)


class DFQ(Preconditioner):
    """Data-free quantization's preconditioning: cross-layer equalization, BN folding, bias correction."""

    config = DFQConfig

    def equalize(self, model: nn.Module, example: torch.Tensor) -> nn.Module:
        if not self.cfg.cle:
            return model
        cfg = self.cfg
        return equalize(model, example, relu6_to_relu=cfg.relu6_to_relu, absorb_high_bias=cfg.absorb_high_bias).eval()

    def fold(self, model: nn.Module) -> nn.Module:
        return fold_bn(model) if self.cfg.fold_bn else copy.deepcopy(model)

    def correct(self, quantized: nn.Module, model: nn.Module, layers: list[LayerInfo], seed: int) -> None:
        if self.cfg.bias_correction:
            correct_biases(quantized, expected_inputs(model, layers, seed=seed))


for _preset in ("bn_fold", "cle", "bias_correction", "none"):  # conf/preconditioner/<preset>.yaml set the flags
    PRECONDITIONERS.register(_preset)(DFQ)


def preconditioner(cfg: PreconditionerConfig | None = None) -> Preconditioner:
    """The preconditioner `cfg` names (default: BN folding alone)."""
    cfg = cfg if cfg is not None else DFQConfig()
    return PRECONDITIONERS.get(cfg.name)(cfg)
