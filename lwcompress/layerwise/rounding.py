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

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from lwcompress.compress.modules import GAMMA, ZETA, CompressedLayer, rectified_sigmoid
from lwcompress.compress.quantizer import fake_quant, qrange
from lwcompress.fields import bounded, changed_default, check, choice
from lwcompress.layerwise.gptq import gptq_layer, search_input_step
from lwcompress.registry import Registry

if TYPE_CHECKING:
    from lwcompress.layerwise.config import LayerwiseConfig


@dataclass
class RoundingConfig:
    """What every rounding's settings hold: `name` (the registered rounding, or a class's import path). A rounding
    with settings of its own declares a subclass as its `config`; the values come from `layerwise.roundings.<name>`
    (LayerwiseConfig.rounding_settings)."""

    name: str = ""

    def __post_init__(self) -> None:
        check(self)


@dataclass
class AdaRoundConfig(RoundingConfig):
    """`reg_weight`: the regularizer that pushes every choice to 0 or 1, off for the first `reg_warmup` of the
    steps, then with its exponent annealed (cosine) from `beta_start` to `beta_end`. `rtn_anchor`: the trust
    region around round-to-nearest: a layer pays rtn_anchor x (its round-to-nearest error) x (the mean squared
    distance of its choices from round-to-nearest's, the share of flipped weights once hard), so choices that only
    fit the synthetic inputs' quirks stay where round-to-nearest put them; 0: plain AdaRound."""

    name: str = "adaround"
    reg_weight: float = bounded(0.01, 0.0)
    reg_warmup: float = bounded(0.2, 0.0, 1.0)
    rtn_anchor: float = bounded(0.0, 0.0)
    beta_start: float = bounded(20.0, 1.0)
    beta_end: float = bounded(2.0, 1.0)


@dataclass
class GPTQConfig(RoundingConfig):
    """`damp`: Hessian damping, x its mean diagonal (0.001 beat 0.01 on the validation split, round2_tuning.md);
    `rows`: pool rows per input feature the Hessian is summed over (fewer: faster); `order`: the column order, by
    the Hessian diagonal (descending) or natural; `weight_search` / `input_search`: also choose each output
    channel's weight step / the input step among `candidates` evenly spaced multiples 0.5 ... 1.5 of the closed
    form's (and itself), by the solved layer's output error (layerwise/gptq.py; round15_tuning.md; the input
    step's candidates are solved and judged on 256 of the pool's inputs)."""

    name: str = "gptq"
    damp: float = bounded(0.001, 0.0)
    rows: int = bounded(128, 1)
    order: str = choice("descending", "descending", "natural")
    weight_search: bool = changed_default(True, before=False)
    input_search: bool = changed_default(True, before=False)
    candidates: int = bounded(11, 2)


class Rounding(ABC):
    """What every rounding declares: `trained` (learned by the layer run's optimizer; else solved in closed form),
    `block_form` (can learn jointly with the other layers of a block unit) and `config` (its settings, a
    RoundingConfig dataclass), and holds its settings as `settings`."""

    trained: ClassVar[bool]
    block_form: ClassVar[bool]
    config: ClassVar[type[RoundingConfig]] = RoundingConfig


class TrainedRounding(nn.Module, Rounding):
    """A learned rounding, opened on one CompressedLayer (`q.rounding`) for the length of a layer run, with its
    settings."""

    trained = True
    block_form = True

    def __init__(self, q: CompressedLayer, learn_weight_scale: bool, settings: RoundingConfig) -> None:
        super().__init__()
        self.settings = settings

    @abstractmethod
    def weight(self, q: CompressedLayer, hard: bool) -> torch.Tensor:
        """`q`'s weight on its grid while learning (differentiable); `hard`: the final choice, put into the latent
        weight when the run ends (`CompressedLayer.harden`)."""

    @abstractmethod
    def param_groups(self, q: CompressedLayer, cfg: LayerwiseConfig) -> list[dict]:
        """Adam parameter groups of what it learns, each at a learning rate in the unit of what it moves."""

    def penalty(self, q: CompressedLayer, cfg: LayerwiseConfig, progress: float, rtn_error: float) -> torch.Tensor:
        """What the run adds to the layer's reconstruction loss (`progress`: the share of the run's steps done, 0..1;
        `rtn_error`: the layer's held-out round-to-nearest error)."""
        return q.layer.weight.new_zeros(())


class SolvedRounding(Rounding):
    """A closed-form rounding: no optimizer steps, one solve per layer from its input pool."""

    trained = False
    block_form = False

    def __init__(self, settings: RoundingConfig) -> None:
        self.settings = settings

    @abstractmethod
    def solve(self, q: CompressedLayer, x: torch.Tensor, x_ref: torch.Tensor, cfg: LayerwiseConfig) -> None:
        """Set `q`'s weight to codes on its grid for inputs `x` (the layer's own) and `x_ref` (where the FP
        layer's target comes from) of the same samples; the layer ends hardened."""


ROUNDINGS: Registry[type[Rounding]] = Registry("rounding", base=Rounding, config=RoundingConfig)


def trained_rounding(
    cls: type[TrainedRounding], settings: RoundingConfig | None = None
) -> Callable[[CompressedLayer, bool], TrainedRounding]:
    """What `CompressedLayer.make_trainable` builds on a layer: `cls` with `settings` (default: its config's)."""
    chosen = settings if settings is not None else cls.config()
    return lambda q, learn_weight_scale: cls(q, learn_weight_scale, chosen)


@ROUNDINGS.register("adaround")
class AdaRound(TrainedRounding):
    """Learned up/down per weight: h(alpha) in [0, 1] added to floor(w / step), the weight and its grid fixed
    (their grid defines the choices). Starts where h(alpha) equals the rounding remainder (the soft weight is the
    float weight)."""

    config = AdaRoundConfig

    def __init__(self, q: CompressedLayer, learn_weight_scale: bool, settings: RoundingConfig) -> None:
        super().__init__(q, learn_weight_scale, settings)
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

    def penalty(self, q: CompressedLayer, cfg: LayerwiseConfig, progress: float, rtn_error: float) -> torch.Tensor:
        """AdaRound's push of every h(alpha) towards 0 or 1 past the warm-up (per weight), and the trust region
        around round-to-nearest (`rtn_anchor`, scaled by `rtn_error`)."""
        total = super().penalty(q, cfg, progress, rtn_error)
        beta = self.annealed_beta(progress)
        if beta is not None:
            h = rectified_sigmoid(self.alpha)
            total = total + self.settings.reg_weight * ((1 - (2 * h - 1).abs().pow(beta)).sum() / self.alpha.numel())
        if self.settings.rtn_anchor:
            total = total + self.settings.rtn_anchor * rtn_error * self.rtn_distance(q)
        return total

    def annealed_beta(self, progress: float) -> float | None:
        """The regularizer's exponent at `progress` (0..1) of a run, or None during the warm-up (no regularizer)."""
        s = self.settings
        if progress < s.reg_warmup:
            return None
        t = (progress - s.reg_warmup) / max(1e-8, 1 - s.reg_warmup)
        return s.beta_end + 0.5 * (s.beta_start - s.beta_end) * (1 + math.cos(math.pi * t))

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

    def __init__(self, q: CompressedLayer, learn_weight_scale: bool, settings: RoundingConfig) -> None:
        super().__init__(q, learn_weight_scale, settings)
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
    """GPTQ / OBQ-style rounding with error feedback (layerwise/gptq.py), with its damping, column order, rows and
    step searches."""

    config = GPTQConfig

    def solve(self, q: CompressedLayer, x: torch.Tensor, x_ref: torch.Tensor, cfg: LayerwiseConfig) -> None:
        s = self.settings
        factors = torch.linspace(0.5, 1.5, s.candidates).tolist()
        if s.input_search and q.abits is not None:
            search_input_step(q, x, x_ref, factors, lambda xs, refs: gptq_layer(q, xs, refs, s.damp, s.order, s.rows))
        gptq_layer(q, x, x_ref, s.damp, s.order, s.rows, factors if s.weight_search else None)
