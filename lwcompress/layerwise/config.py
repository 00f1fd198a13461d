"""Settings of the per-layer reconstruction runs (a plain dataclass; also the `layerwise` config group)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lwcompress.errors import UserError
from lwcompress.fields import bounded, check, choice, defaults
from lwcompress.layerwise.rounding import ROUNDINGS, AdaRoundConfig, GPTQConfig, RoundingConfig


def _builtin_roundings(before: bool = False) -> dict[str, Any]:
    """The built-in roundings' settings at their defaults, as plain values (what `lwcompress --cfg job` shows;
    `LayerwiseConfig.__post_init__` types and checks them, so that an error names its whole key). `before`: as
    runs made before a default changed had them (`fields.defaults`), what an older run dir or layer store holds."""
    settings = {}
    for config in (AdaRoundConfig, GPTQConfig):  # their classes, not the registry: no plug-in loads at import
        values = defaults(config) if before else dataclasses.asdict(config())
        settings[values["name"]] = {k: v for k, v in values.items() if k != "name"}
    return settings


def _settings(name: str, values: Any) -> RoundingConfig:
    """Rounding `name`'s settings from `values` (its config, or a dict of its fields); a one-line UserError naming
    `roundings.<name>` otherwise."""
    if isinstance(values, RoundingConfig):
        return values
    try:
        return ROUNDINGS.settings(name, **dict(values or {}))
    except UserError as e:
        message = str(e).removeprefix(f"rounding={name}: ")
        field_check = "=" in message.split(":", 1)[0]  # "reg_weight=-1: must be ...": a field's own check
        raise UserError(f"roundings.{name}{'.' if field_check else ': '}{message}") from None


@dataclass
class LayerwiseConfig:
    """One layer run: `steps` Adam steps on fresh batches of `batch_size` inputs (`spatial_size`^2 crops for convs).

    600 steps of 16 (round 11; 300 of 32 before): on the same images, 300 steps left the solver's seed deciding
    mobilenetv2_small W3A3 (one solver seed in five fell ten points over 5 rounding choices of its first
    inverted-residual block); twice the steps at half the batch made the runs agree (image seeds 0-4: 85.60 -> 87.12
    mean, spread 1.74 -> 0.76) for 1.4x the layer phase, where twice the steps at the same batch cost 1.9x and 128-input
    batches spread wider (experiments/results/round11_tuning.md).

    Learning rates: AdaRound's rounding logits use `lr` as is (they live on a logit scale); STE latent weights and
    LSQ scales use `lr_scaled` x (the layer's own weight / input scale), and the bias `lr_scaled` x 0.1 x (the std
    of the layer's output), so one value fits every layer whatever its magnitudes. Float weights (pruning without
    quantization) use `lr_weight` x their RMS per output channel (a pruned layer must move its survivors far more
    than a quantized one its rounding; tuned on the validation split, experiments/results/prune_tuning.md).
    `loss`: mse on the layer output, mse_post_act after the activation that follows it (ReLU/ReLU6), or
    mse_channel (each output channel normalized by its own variance). Every loss is divided by the target's
    variance, so layers are comparable. A layer whose held-out error ends above its round-to-nearest error is
    put back to round-to-nearest (`keep_better`). Layers fed by the image stay at round-to-nearest unless
    `train_input_layers` or generator=real: a data-free stand-in for images (N(0, 1)) trains them for the wrong
    input (measured on resnet20 W4A4: the first conv's error on real inputs went from 2e-5 to 6e-3).
    `mode`: sequential (the default: each layer trained on its inputs inside the network whose earlier layers are
    already compressed, so it can undo their error; layers run in order; generator=propagated, distilled or real) or
    independent (the paper: inputs and targets from the FP network, layers parallel across ranks). Chosen on the
    validation split: mobilenetv2_small W3A8 91.10 vs 89.92, resnet20 W3A8 a tie, mobilenetv2_small W4A4 88.82
    vs 89.52 (experiments/results/layerwise_tuning.md).
    `unit` (sequential mode): "block" (BRECQ: the layers of a residual / inverted-residual block learn together
    against the FP block's output, activation grids inside the block included; layerwise/blocks.py says how blocks
    are found; the stem and head stay single layers; a block that holds a GPTQ-rounded or a pruned layer, which
    have no block form, runs layer by layer; `auto_blocks=adaround` instead learns the blocks of rounding=auto's
    GPTQ layers whole by AdaRound, as before round 16, experiments/results/round16_tuning.md) or "layer" (each
    layer against its own FP output). Block is the default since round 3: with generator=distilled and learned
    input steps it was at or above round-to-nearest at 47 of 48 round-2 cells x seeds (val; mobilenetv2_small
    W3A3 86.10 vs 79.70 with layer units, experiments/results/round3_tuning.md §5-6).
    `segments` (sequential mode): cut the layer order into that many contiguous segments of about equal cost, each
    sequential inside itself with its first layer fed by the FP network, so the ranks of a job can run them in
    parallel: 1 is the plain sequential run, one segment per layer is close to the independent run
    (experiments/results/segments.md measures what the cut costs).
    `guard`: after all runs, check the whole network in the generator's domain (layerwise/guard.py): "model" keeps
    the learned layers only if together they lower the synthetic logit error, "layer" puts back, in order, each
    layer whose round-to-nearest version lowers it; generators without a domain network (bn_gaussian, gaussian,
    hybrid) skip it. compressor.rounding=gptq solves each layer from its whole captured pool (sampled inputs:
    `refit_samples` of them).
    `max_gap`: layers whose domain gap (generate.domain_gaps: the statistics of the FP layer's output on the
    generator's images against the training statistics of its BatchNorm, a mean per-channel Gaussian KL) exceeds
    it keep their closed form untrained; null trains every layer. Measured on mobilenetv2_small W4A4 (val, seed 0):
    the gaps are largest in the early blocks, where the learned layers hurt most; 0.05 lifts the run from 88.76 to
    89.62, 0.02 gives 88.48, both below round-to-nearest's 90.06 (experiments/results/round2_tuning.md), so it
    stays off.
    `learn_above`: before anything is generated, each layer's round-to-nearest relative output error is measured
    on the paper's BN-Gaussian inputs (milliseconds, no images; layerwise/gate.py); if no trainable layer's exceeds
    it, rounding broke nothing learning could recover on synthetic data, and the closed form is the result. W8A8
    gives at most 3.1e-4 / 1.2e-3 (mobilenetv2_small / resnet20), W6A8 1.1e-3 / 1.2e-3, every cell with 4-bit
    weights or inputs >= 3.9e-2 (experiments/results/round3_gate_noise.txt); at W8A8 the
    learned default cost 128-201 s and landed -0.17 ... +0.20 around round-to-nearest (val and test, 3 seeds;
    experiments/results/round3_tuning.md §7). null: always learn.
    `min_headroom`: once the generator's images exist (and before any layer runs), the round-to-nearest network
    is compared with the FP network on them in the generator's domain (KL of the softmax outputs, mean per image;
    layerwise/gate.py `rounding_headroom`); at or below it, rounding lost too little for learning to win back and
    the closed form is the result (the images stay cached for other cells). Learning only fits the synthetic
    images where nothing was lost: torchvision resnet18 W4A4, RTN at or above FP on validation, ended 0.6 below
    it. 0.017 lies between its KL (0.011-0.016 over three image sets) and the smallest where learning paid
    (0.017-0.019); resnet18 W4A4 all layers measures 0.017-0.024 and still loses where it learns
    (experiments/results/round6_tuning.md). null: no such gate.
    `min_gain`: a learned layer is kept only if its held-out error is at most (1 - min_gain) x its round-to-nearest
    error (with keep_better); a small gain on synthetic inputs is as likely to be fitted to them as to carry over.
    `roundings`: each rounding's own settings by its name (`layerwise.roundings.adaround.rtn_anchor=0.5`,
    `+layerwise.roundings.my_rounding.x=1` for a plug-in's): AdaRoundConfig, GPTQConfig (layerwise/rounding.py);
    `compressor.rounding` picks which rounding runs ("auto": gptq and adaround).
    `target` (sequential mode): what a layer learns to reproduce: the FP layer's output on the FP network's inputs
    ("fp": it also undoes the error that reaches it from the compressed layers before it), or the FP layer's output
    on its own inputs ("own": it only makes up for its own rounding and input grid, as AdaRound does).
    """

    steps: int = bounded(600, 0)
    batch_size: int = bounded(16, 1)
    spatial_size: int = bounded(8, 1)
    lr: float = bounded(3e-2, 0.0)
    lr_scaled: float = bounded(1e-2, 0.0)
    lr_weight: float = bounded(1.0, 0.0)
    schedule: str = choice("cosine", "cosine", "constant")
    loss: str = choice("mse", "mse", "mse_post_act", "mse_channel")
    eval_batch: int = bounded(256, 1)  # held-out synthetic inputs per layer for the before/after error
    keep_better: bool = True
    learn_above: float | None = bounded(2e-3, 0.0, optional=True)  # see below; null: always learn
    min_headroom: float | None = bounded(0.017, 0.0, optional=True)  # see below; null: no network-level gate
    min_gain: float = bounded(0.0, 0.0, 1.0)  # with keep_better: the share of its RTN error to shed, see below
    train_input_layers: bool = False  # see below
    train_bias: bool = False  # measured: a trained bias cost mobilenetv2_small W4A4 1.7 points (propagated)
    bucket_params: int = bounded(0, 0)  # layers per Lightning module by total params; 0 = all in one
    mode: str = choice("sequential", "independent", "sequential")  # see below
    target: str = choice("fp", "fp", "own")  # sequential mode: the FP layer's output on FP inputs, or on its own
    unit: str = choice("block", "layer", "block")  # sequential mode: what one run reconstructs, see above
    # unit=block, rounding=auto: a block that holds a layer auto solves by GPTQ runs layer by layer (split), or the
    # whole block learns by AdaRound (adaround, as before round 16). See below.
    auto_blocks: str = choice("split", "split", "adaround", before="adaround")
    segments: int = bounded(1, 1)  # sequential mode: contiguous segments, each sequential inside, run in parallel
    refit: bool = True  # pruned layers: least-squares survivors before the steps (layerwise/refit.py)
    refit_samples: int = bounded(1024, 1)  # layer-input samples the least-squares fits (refit, gptq) see
    drop_prob: float = bounded(0.0, 0.0, 1.0)  # QDrop: input elements left unquantized while training
    guard: str = choice("none", "none", "model", "layer")  # network-level check of the learned layers (guard.py)
    guard_images: int = bounded(128, 1)  # synthetic images the guard judges on
    max_gap: float | None = bounded(None, 0.0, optional=True)  # see above; null: every layer trains
    roundings: dict[str, Any] = field(
        default_factory=_builtin_roundings, metadata={"before": _builtin_roundings(before=True)}
    )  # see above
    seed: int = 0

    def __post_init__(self) -> None:
        check(self)
        for name, values in self.roundings.items():  # checked now, typed when a layer run asks (rounding_settings)
            _settings(name, values)
        if self.segments > 1 and self.mode != "sequential":
            raise UserError(f"segments={self.segments}: segments cut a sequential run; with mode={self.mode} every "
                            "layer is its own unit already")  # fmt: skip

    def rounding_settings(self, name: str) -> RoundingConfig:
        """Rounding `name`'s settings: `roundings[name]` over its config's defaults."""
        return _settings(name, self.roundings.get(name, {}))
