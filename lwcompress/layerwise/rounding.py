"""How a layer run picks a quantized layer's weight codes (`compressor.rounding`): the registered roundings by name.

adaround  learned up/down per weight (Nagel et al. 2020): rounding logits with an annealed regularizer that
          pushes every choice to 0 or 1; weight and grid fixed
ste       the latent float weight itself trained through a straight-through estimator (and its grid's scale)
gptq      no training: solved in closed form from the layer's input second moments (layerwise/gptq.py)

A rounding is a class (docs/extending.md): a `TrainedRounding` is an nn.Module built on the layer for the run
(it owns what it learns, gives the weight on the grid while learning and the penalty it adds to the loss; it can
learn inside a block unit); a `SolvedRounding` sets the codes from the layer's inputs in one call. The pipeline
asks the class (`trained`, `block_form`), never its name. Plug-ins come in by import path
(`compressor.rounding=my_pkg.rounding.MyRounding`) or the `lwcompress.plugins` entry points.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from lwcompress.compress.modules import GAMMA, ZETA, CompressedLayer, rectified_sigmoid
from lwcompress.compress.quantizer import fake_quant, qrange
from lwcompress.layerwise.gptq import gptq_layer
from lwcompress.registry import Registry

if TYPE_CHECKING:
    from lwcompress.layerwise.config import LayerwiseConfig


class Rounding(ABC):
    """What every rounding declares: `trained` (learned by the layer run's optimizer; else solved in closed form)
    and `block_form` (can learn jointly with the other layers of a block unit)."""

    trained: ClassVar[bool]
    block_form: ClassVar[bool]


class TrainedRounding(nn.Module, Rounding):
    """A learned rounding, opened on one CompressedLayer (`q.rounding`) for the length of a layer run."""

    trained = True
    block_form = True

    def __init__(self, q: CompressedLayer, learn_weight_scale: bool) -> None:
        super().__init__()

    @abstractmethod
    def weight(self, q: CompressedLayer, hard: bool) -> torch.Tensor:
        """`q`'s weight on its grid while learning (differentiable); `hard`: the final choice, put into the latent
        weight when the run ends (`CompressedLayer.harden`)."""

    @abstractmethod
    def param_groups(self, q: CompressedLayer, cfg: LayerwiseConfig) -> list[dict]:
        """Adam parameter groups of what it learns, each at a learning rate in the unit of what it moves."""

    def penalty(self, q: CompressedLayer, cfg: LayerwiseConfig, beta: float | None, rtn_error: float) -> torch.Tensor:
        """What the run adds to the layer's reconstruction loss (`beta`: the annealed exponent, None in warm-up;
        `rtn_error`: the layer's held-out round-to-nearest error)."""
        return q.layer.weight.new_zeros(())


class SolvedRounding(Rounding):
    """A closed-form rounding: no optimizer steps, one solve per layer from its input pool."""

    trained = False
    block_form = False

    @abstractmethod
    def solve(self, q: CompressedLayer, x: torch.Tensor, x_ref: torch.Tensor, cfg: LayerwiseConfig) -> None:
        """Set `q`'s weight to codes on its grid for inputs `x` (the layer's own) and `x_ref` (where the FP
        layer's target comes from) of the same samples; the layer ends hardened."""


ROUNDINGS: Registry[type[Rounding]] = Registry("rounding", base=Rounding)


@ROUNDINGS.register("adaround")
class AdaRound(TrainedRounding):
    """Learned up/down per weight: h(alpha) in [0, 1] added to floor(w / step), the weight and its grid fixed
    (their grid defines the choices). Starts where h(alpha) equals the rounding remainder (the soft weight is the
    float weight)."""

    def __init__(self, q: CompressedLayer, learn_weight_scale: bool) -> None:
        super().__init__(q, learn_weight_scale)
        rest = (q.layer.weight / q.w_scale - torch.floor(q.layer.weight / q.w_scale)).detach()
        p = ((rest - GAMMA) / (ZETA - GAMMA)).clamp(1e-4, 1 - 1e-4)
        self.alpha = nn.Parameter(torch.log(p / (1 - p)))

    def weight(self, q: CompressedLayer, hard: bool) -> torch.Tensor:
        h = (self.alpha >= 0).float() if hard else rectified_sigmoid(self.alpha)
        floor = torch.floor(q.layer.weight / q.w_scale).detach()
        codes = torch.clamp(floor + h + q.w_zero_point, *qrange(q.wbits, q.symmetric))
        return (codes - q.w_zero_point) * q.w_scale

    def param_groups(self, q: CompressedLayer, cfg: LayerwiseConfig) -> list[dict]:
        return [{"params": [self.alpha], "lr": cfg.lr}]  # logits: `lr` as is

    def penalty(self, q: CompressedLayer, cfg: LayerwiseConfig, beta: float | None, rtn_error: float) -> torch.Tensor:
        """AdaRound's push of every h(alpha) towards 0 or 1 once `beta` is set (per weight), and the trust region
        around round-to-nearest (layerwise.rtn_anchor, scaled by `rtn_error`)."""
        total = super().penalty(q, cfg, beta, rtn_error)
        if beta is not None:
            h = rectified_sigmoid(self.alpha)
            total = total + cfg.reg_weight * ((1 - (2 * h - 1).abs().pow(beta)).sum() / self.alpha.numel())
        if cfg.rtn_anchor:
            total = total + cfg.rtn_anchor * rtn_error * self.rtn_distance(q)
        return total

    def rtn_distance(self, q: CompressedLayer) -> torch.Tensor:
        """Mean squared distance of the soft choices h(alpha) from round-to-nearest's (0 at RTN, the share of
        flipped weights once hard)."""
        w = q.layer.weight.detach() / q.w_scale.detach()  # both fixed while AdaRound learns
        nearest = (w - torch.floor(w) >= 0.5).float()
        return (rectified_sigmoid(self.alpha) - nearest).pow(2).mean()


@ROUNDINGS.register("ste")
class STE(TrainedRounding):
    """The latent float weight trained through a straight-through estimator, with its grid's scale (LSQ-style)
    when `learn_weight_scale`."""

    def __init__(self, q: CompressedLayer, learn_weight_scale: bool) -> None:
        super().__init__(q, learn_weight_scale)
        q.layer.weight.requires_grad_(True)
        q.w_scale.requires_grad_(learn_weight_scale)

    def weight(self, q: CompressedLayer, hard: bool) -> torch.Tensor:
        return fake_quant(q.layer.weight, q.w_scale, q.w_zero_point, *qrange(q.wbits, q.symmetric))

    def param_groups(self, q: CompressedLayer, cfg: LayerwiseConfig) -> list[dict]:
        step = cfg.lr_scaled * float(q.w_scale.detach().mean())  # in units of the grid step
        groups = [{"params": [q.layer.weight], "lr": step}]
        if q.w_scale.requires_grad:
            groups.append({"params": [q.w_scale], "lr": step / 10})
        return groups


@ROUNDINGS.register("gptq")
class GPTQ(SolvedRounding):
    """GPTQ / OBQ-style rounding with error feedback (layerwise/gptq.py), with layerwise.gptq_damp, gptq_order and
    gptq_rows."""

    def solve(self, q: CompressedLayer, x: torch.Tensor, x_ref: torch.Tensor, cfg: LayerwiseConfig) -> None:
        gptq_layer(q, x, x_ref, cfg.gptq_damp, cfg.gptq_order, cfg.gptq_rows)
