"""Where a layer run gets its input batches: sampled fresh each step, or drawn from a captured pool.

Both kinds answer `sample(n, generator)`; the layer run owns the generator (one seeded stream per layer), so a run
is reproducible and two layers never share a stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from lwcompress.graph import LayerInfo


class LayerInputs(Protocol):
    """Batches of one layer's input."""

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor: ...


@dataclass
class GaussianSources:
    """Each source tensor i.i.d. N(mean_c, std_c^2) per element, replayed through the layer's elementwise path.

    With BN sources this is the paper's input model; with N(0, 1) for every layer input it is the naive ablation.
    """

    info: LayerInfo
    means: Sequence[torch.Tensor]  # per source: (C,)
    stds: Sequence[torch.Tensor]  # per source: (C,)
    shapes: Sequence[tuple[int, ...]]  # per source: (C, ...) per sample

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        tensors = []
        for mean, std, shape in zip(self.means, self.stds, self.shapes, strict=True):
            view = (1, -1) + (1,) * (len(shape) - 1)
            noise = torch.randn((n, *shape), generator=generator)
            tensors.append(noise * std.view(view) + mean.view(view))
        return self.info.path(*tensors)


@dataclass
class Pool:
    """A fixed set of captured layer inputs (real, propagated or distilled); batches are random items, randomly
    cropped to `crop` pixels for spatial inputs (a crop is as good a conv problem as the full map, and cheaper)."""

    data: torch.Tensor  # (N, C, H, W) or (N, F)
    crop: int | None = None

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self._draw([self.data], n, generator)[0]

    def _draw(self, tensors: list[torch.Tensor], n: int, generator: torch.Generator) -> list[torch.Tensor]:
        """The same random items and crop from each tensor. The window is cut before the items are gathered, so a
        batch costs the bytes of its crops, not of the items' whole maps (49x less for 8x8 crops of 56x56 maps)."""
        first = tensors[0]
        idx = torch.randint(0, len(first), (n,), generator=generator)
        if self.crop is None or first.ndim != 4 or self.crop >= min(first.shape[-2:]):
            return [t[idx] for t in tensors]
        h, w = first.shape[-2:]
        top = int(torch.randint(0, h - self.crop + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - self.crop + 1, (1,), generator=generator))
        return [t[:, :, top : top + self.crop, left : left + self.crop][idx] for t in tensors]


@dataclass
class PairedPool(Pool):
    """Sequential runs: a layer's inputs inside the partly compressed network (`data`) with the FP network's
    inputs for the same images (`reference`); the layer trains on the first, its target comes from the second."""

    reference: torch.Tensor | None = None

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        x, ref = self._draw([self.data, self.reference], n, generator)
        return x, ref


def bn_moments(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(beta, |gamma|) of a BatchNorm: the mean and std per channel of its output under the paper's model."""
    if not bn.affine:
        return torch.zeros(bn.num_features), torch.ones(bn.num_features)
    return bn.bias.detach().clone(), bn.weight.detach().abs()


def sample_shapes(info: LayerInfo, spatial_size: int) -> list[tuple[int, ...]]:
    """Per-source sample shapes: `spatial_size` crops of the layer input for convs, scaled back to each source's
    resolution (a stride-2 pool on the path doubles it); true shapes where a global pooling or flatten lies on
    the path, since pooling i.i.d. samples over a crop would shrink the variance the layer sees."""
    shapes = [s.shape for s in info.sources]
    if any(s is None for s in shapes) or info.input_shape is None:
        raise ValueError(f"layer {info.name}: analyze() needs an example input to know source shapes")
    global_pool = any(op.startswith("adaptive_") or op == "flatten" for op in info.ops)
    if global_pool or len(info.input_shape) < 3:
        return list(shapes)
    height = info.input_shape[-2]
    size = min(spatial_size, height)
    out = []
    for shape in shapes:
        ratio = shape[-2] / height
        out.append((shape[0], *(max(1, round(size * ratio)),) * (len(shape) - 1)))
    return out


def layer_stream(seed: int, index: int) -> torch.Generator:
    """The seeded random stream of layer `index`: reproducible, and distinct for every layer."""
    return torch.Generator().manual_seed(seed * 1_000_003 + index * 7_919 + 1)
