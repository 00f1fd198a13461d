"""Preconditioners: what is done to the FP model around quantization, and where each claims to preserve it.

Order in `lwcompress.api.compress`: cross-layer equalization on the unfolded model (so BN statistics, which
the data-free ranges and generators read, stay consistent with the rescaled channels) -> graph analysis ->
BN folding -> quantization -> analytic bias correction of the weights' rounding error.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from lwcompress.graph import fold_bn
from lwcompress.precondition.bias_correction import correct_biases, expected_inputs
from lwcompress.precondition.cle import equalize

__all__ = ["PreconditionerConfig", "correct_biases", "equalize", "expected_inputs", "fold", "equalized"]


@dataclass
class PreconditionerConfig:
    """`name` labels the preset (a config-group option); the flags say what runs.

    fold_bn: fold each BatchNorm into the conv before it, as a deployed integer model does (exact).
    cle: cross-layer equalization of conv -> (ReLU) -> conv pairs whose BN output feeds nothing else (exact,
      positive homogeneity); `relu6_to_relu` first turns ReLU6 into ReLU so depthwise chains pair up (changes
      the function where activations exceed 6); `absorb_high_bias` moves beta - 3|gamma| > 0 into the next layer
      (exact only away from zero-padded borders).
    bias_correction: after rounding, add (W - W_q) E[x] to each bias, E[x] from the BN-Gaussian input model.
    """

    name: str = "bn_fold"
    fold_bn: bool = True
    cle: bool = False
    relu6_to_relu: bool = False
    absorb_high_bias: bool = False
    bias_correction: bool = False


def equalized(model: nn.Module, cfg: PreconditionerConfig, example: torch.Tensor) -> nn.Module:
    """The unfolded model the rest of the pipeline reads: equalized when `cfg.cle`, else `model` itself."""
    if not cfg.cle:
        return model
    return equalize(model, example, relu6_to_relu=cfg.relu6_to_relu, absorb_high_bias=cfg.absorb_high_bias).eval()


def fold(model: nn.Module, cfg: PreconditionerConfig) -> nn.Module:
    """A copy of `model` ready to quantize: BN folded when `cfg.fold_bn` (the input model is never modified)."""
    return fold_bn(model) if cfg.fold_bn else copy.deepcopy(model)
