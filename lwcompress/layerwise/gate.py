"""Whether learning can pay, decided before any layer runs: how much did round-to-nearest break?

Learned rounding and step sizes recover what rounding lost. Where every trainable layer's round-to-nearest output
is already within about 30 dB of its FP output there is nothing to recover that synthetic data can resolve: at
W8A8 the learned default cost 128-201 s per run and moved top-1 by -0.17 ... +0.20 around round-to-nearest, in
either direction by split and seed (experiments/results/round3_tuning.md §7). Each layer's relative output error
is measured on the paper's BN-Gaussian inputs (a few milliseconds per layer, no images); the largest per cell is
3.1e-4 / 1.2e-3 at W8A8 (mobilenetv2_small / resnet20), at least 3.9e-2 wherever weights or inputs have 4 bits
(experiments/results/round3_gate_noise.txt).

The second gate looks at the whole network once the generator's images exist: the KL divergence of the
round-to-nearest network's softmax from the FP network's on them (`rounding_headroom`). Learning can win back at
most what rounding lost; on a cell where rounding lost next to nothing (torchvision ResNet-18 W4A4: RTN at or
above FP on validation) the learned layers only fit the synthetic images and lose (-0.62 on validation, -0.15 on
every test seed; real images too). Every 4-bit layer's own error there is far above `learn_above`: only the whole
network shows how little was lost (experiments/results/round6_tuning.md).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from lwcompress.compress.modules import CompressedLayer
from lwcompress.generate import LayerInputs, layer_stream
from lwcompress.layerwise.guard import domain_twin, output_error
from lwcompress.layerwise.run import LayerResult, LayerTask, held_out_error


@torch.no_grad()
def rounding_noise(tasks: list[LayerTask], inputs: dict[str, LayerInputs], samples: int, seed: int) -> dict[str, float]:
    """Each task's round-to-nearest relative output error (MSE / Var(FP output)) on `samples` draws of its
    `inputs`; tasks `inputs` has no model for are left out."""
    return {t.name: held_out_error(t, inputs[t.name].sample(samples, layer_stream(seed + 3, t.index)), "mse")
            for t in tasks if t.name in inputs}  # fmt: skip


def worth_learning(tasks: list[LayerTask], noise: dict[str, float], learn_above: float | None) -> bool:
    """Whether some trainable task's error exceeds `learn_above` (None: always; so does any task with no measure)."""
    if learn_above is None or any(t.name not in noise for t in tasks):
        return True
    return any(noise[t.name] > learn_above for t in tasks if t.train)


def untrained(tasks: list[LayerTask], noise: dict[str, float]) -> list[LayerResult]:
    """The results of layers left at their closed form, with the error `rounding_noise` measured."""
    results = []
    for t in tasks:
        real = held_out_error(t, t.real_inputs, "mse") if t.real_inputs is not None else None
        results.append(LayerResult(t.name, noise[t.name], noise[t.name], real, real, reverted=False, wall_s=0.0))
    return results


@torch.no_grad()
def rounding_headroom(
    layers: dict[str, CompressedLayer], references: dict[str, nn.Module], domain: nn.Module, images: torch.Tensor,
    float_inputs: set[str], chunk: int,
) -> float:  # fmt: skip
    """KL(FP || round-to-nearest) of the network's softmax outputs on `images`, mean per image: the closed-form
    `layers` (by name; their FP `references`) put into the folded FP `domain` network as the guard puts them
    (layerwise/guard.py; layers in `float_inputs` take their input unquantized)."""
    net = copy.deepcopy(domain).eval()
    for name, q in layers.items():
        net.set_submodule(name, domain_twin(q, domain.get_submodule(name), references[name], name in float_inputs))
    out, target = (torch.cat([n(images[i : i + chunk]) for i in range(0, len(images), chunk)]) for n in (net, domain))
    return output_error(out, target, "output_kl")
