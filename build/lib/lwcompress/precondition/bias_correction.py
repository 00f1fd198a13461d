"""Analytic bias correction of weight quantization error (Nagel et al. 2019, "Data-Free Quantization", DFQ).

A quantized layer's output error (W_q - W) x has the mean (W_q - W) E[x]: a per-output-channel shift that
rounding does not average away and later layers pile up. E[x] follows from BatchNorm statistics under the
BN-Gaussian input model (each BN output N(beta_c, gamma_c^2), the model input N(0, 1)), so the layer's bias
can absorb the shift without data.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lwcompress.compress.modules import CompressedLayer
from lwcompress.generate.generators import gaussian_params
from lwcompress.generate.inputs import GaussianSources, layer_stream
from lwcompress.graph import LayerInfo
from lwcompress.precondition.channels import contract_input_channels

# Monte-Carlo samples per forward pass of a path: bounds memory on large feature maps.
CHUNK = 32
# Ops a single Gaussian source can pass through and keep a closed-form mean (identities and dropout aside).
_CLOSED_FORM = ([], ["relu"], ["relu6"])
_PASS_OPS = ("identity", "dropout")


def _relu_mean(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """E[max(0, X)] for X ~ N(mu, sigma^2): mu Phi(mu/sigma) + sigma phi(mu/sigma)."""
    sigma = sigma.clamp_min(1e-30)  # sigma -> 0 gives max(0, mu), which the formula reaches in the limit
    a = mu / sigma
    return mu * torch.special.ndtr(a) + sigma * torch.exp(-0.5 * a**2) / math.sqrt(2 * math.pi)


def closed_form_mean(op: str | None, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """E[op(X)] per channel for X ~ N(mu, sigma^2), op None (identity), "relu" or "relu6" (float64)."""
    mu, sigma = mu.double(), sigma.double()
    if op is None:
        return mu
    if op == "relu":
        return _relu_mean(mu, sigma)
    # relu6(x) = relu(x) - relu(x - 6): the clipped normal's mean from two ReLU means.
    return _relu_mean(mu, sigma) - _relu_mean(mu - 6, sigma)


@torch.no_grad()
def _monte_carlo(sampler: GaussianSources, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    """Per-channel mean of `num_samples` samples of the layer input (dim 1 is the channel / feature)."""
    total, count = None, 0
    for start in range(0, num_samples, CHUNK):
        x = sampler.sample(min(CHUNK, num_samples - start), generator).double()
        dims = [0, *range(2, x.dim())]
        part = x.sum(dims)
        total = part if total is None else total + part
        count += x.numel() // x.shape[1]
    return total / count


def expected_inputs(
    model: nn.Module, layers: list[LayerInfo], num_samples: int = 256, seed: int = 0
) -> dict[str, torch.Tensor | None]:
    """E[x] per input channel (per feature for linear layers) of every layer's input, under the BN-Gaussian model.

    `model` is the unfolded model `layers` was analyzed on, with an example input (source shapes are needed).
    A single BN or model-input source through nothing, a ReLU or a ReLU6 has a closed form. Any other path
    (residual adds, pooling, flatten, concat) is estimated by Monte Carlo on `num_samples` full-size samples of
    the sources, seeded per layer from `seed` (source shapes from `analyze`, so pooling sees the real map size).
    Positions of a sample are i.i.d. under the model, so the standard error of a channel's mean is about
    sigma_c / sqrt(num_samples * H * W), sigma_c the spread of one position of the path's output before any
    pooling and H x W the map size there: < 1% of sigma_c for 256 samples of 7x7 maps. None for layers with a
    source that has no BN statistics.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    out: dict[str, torch.Tensor | None] = {}
    for index, info in enumerate(layers):
        if any(s.kind == "layer" for s in info.sources):
            out[info.name] = None
            continue
        means, stds = gaussian_params(model, info)
        ops = [op for op in info.ops if op not in _PASS_OPS]
        if len(info.sources) == 1 and ops in _CLOSED_FORM:
            mean = closed_form_mean(ops[0] if ops else None, means[0], stds[0])
        else:
            shapes = [s.shape for s in info.sources]
            if any(s is None for s in shapes):
                raise ValueError(f"layer {info.name}: analyze() needs an example input to know source shapes")
            sampler = GaussianSources(info, means, stds, shapes)
            mean = _monte_carlo(sampler, num_samples, layer_stream(seed, index))
        out[info.name] = mean.float()
    return out


@torch.no_grad()
def correct_biases(model: nn.Module, expected: dict[str, torch.Tensor | None]) -> None:
    """Add (W - W_q) E[x] to the bias of every CompressedLayer of `model` whose E[x] is known (in place).

    `model` is the folded, quantized model; `expected` is keyed by layer name (as `expected_inputs` returns
    it). W_q is the weight the layer's forward uses, so afterwards the quantized layer's expected output equals
    the float layer's under the input model. Only the weight error is corrected: input quantization is not.
    A layer without a bias gets one.
    """
    for name, module in model.named_modules():
        mean = expected.get(name)
        if not isinstance(module, CompressedLayer) or mean is None:
            continue
        layer = module.layer
        weight = layer.weight
        in_channels = weight.shape[1] * getattr(layer, "groups", 1)
        if mean.numel() != in_channels:
            raise ValueError(f"layer {name}: expected input has {mean.numel()} channels, the layer {in_channels}")
        error = (weight - module.quantized_weight()).double()
        shift = contract_input_channels(error, getattr(layer, "groups", 1), mean.to(error)).to(weight.dtype)
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros_like(shift), requires_grad=weight.requires_grad)
        layer.bias.add_(shift)
