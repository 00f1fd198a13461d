"""A zero-training layer solver: GPTQ / OBQ-style rounding with error feedback from the layer's input second
moments, on the layer-wise data (synthetic in the data-free setting).

The layer objective ||W_q X_q - W X||^2 (X_q: the layer's own, quantized inputs; X: where the target comes from,
the FP network's inputs for the same samples with layerwise.target=fp, the layer's own unquantized ones with
target=own or in independent runs) is, up to a constant, ||(W_q - W*) X_q||^2 with W* the least-squares weight
that maps X_q to the target. Its Hessian H = X_q X_q^T is all the solver needs: columns of W* are quantized one at
a time (largest H diagonal first with `order=descending`) and each column's rounding error is spread over the
columns not yet quantized through the inverse Hessian's Cholesky factor, so later columns compensate it. Every
output channel keeps its grid's zero point from the closed form, and its step unless the search below picks a
multiple of it; pruned weights stay exact zeros (their removal error is compensated the same way). Grouped
convolutions (depthwise) are solved per group, batched. No optimizer steps: one Gram matrix, one Cholesky and one
pass over the columns per layer.

A trained run also learns the grids' steps; the solver searches them instead, among multiples of the closed form's:
each output channel's weight step by its solved row's share of the output error (one H serves every candidate, so
all of them take one pass over the columns, the candidates as extra rows), and the input step (`search_input_step`)
by the output error of the layer solved at each candidate (the Hessian changes with the input grid, so each
candidate is a whole solve; these solves keep the closed-form weight steps, the final one searches them).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lwcompress.compress.modules import CompressedLayer
from lwcompress.compress.quantizer import qrange


def _columns(layer: nn.Conv2d | nn.Linear, x: torch.Tensor, every: int = 1, shift: int = 0) -> torch.Tensor:
    """What each output position sees, per group: (samples, groups, in_features per group, positions). every > 1:
    only the positions of every `every`-th row and column, from the `shift`-th (a sub-lattice of the output)."""
    groups = getattr(layer, "groups", 1)
    if isinstance(layer, nn.Linear):
        return x.reshape(len(x), 1, -1, 1)
    (ph, pw), (sh, sw) = layer.padding, layer.stride
    x = F.pad(x, (pw, pw, ph, ph))[..., (shift // every) % every * sh :, shift % every * sw :]
    cols = F.unfold(x, layer.kernel_size, layer.dilation, 0, (sh * every, sw * every))  # (N, C*kh*kw, L)
    return cols.view(len(x), groups, -1, cols.shape[-1])


def _moments(
    q: CompressedLayer, x: torch.Tensor, x_ref: torch.Tensor, rows_per_feature: int, chunk: int = 64
) -> tuple[torch.Tensor, ...]:
    """H = X_q^T X_q and X_ref^T X_q per group, summed over chunks of samples (float32 products, float64 sums):
    what the solver needs of the inputs, whatever their number. Neighbouring output positions see nearly the same
    patch, so where the pool offers more than `rows_per_feature` rows per input feature, only a sub-lattice of the
    positions is used (shifted from chunk to chunk): the high-resolution layers would otherwise cost ~10x more."""
    layer, device = q.layer, q.layer.weight.device
    every = 1
    if isinstance(layer, nn.Conv2d):
        positions = _columns(layer, x[:1]).shape[-1]
        features = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        every = max(1, int((len(x) * positions / (rows_per_feature * features)) ** 0.5))
        # At most one step per output position along each axis: every shift (< every) must leave a whole patch.
        every = min([every] + [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in zip(
            x.shape[-2:], layer.padding, layer.dilation, layer.kernel_size, layer.stride, strict=True)])  # fmt: skip
    h = cross = 0
    for n, i in enumerate(range(0, len(x), chunk)):
        xq = _columns(layer, q.quantize_input(x[i : i + chunk].to(device)), every, n)
        xr = _columns(layer, x_ref[i : i + chunk].to(device), every, n)
        xq, xr = (t.permute(1, 2, 0, 3).flatten(2) for t in (xq, xr))  # (G, K, rows)
        h = h + (xq @ xq.transpose(1, 2)).double()
        cross = cross + (xr @ xq.transpose(1, 2)).double()
    return h, cross


def _ridge(h: torch.Tensor, damp: float) -> torch.Tensor:
    """damp x mean diag(H) x I per group: the damping, relative to each group's input energy."""
    eye = torch.eye(h.shape[-1], dtype=h.dtype, device=h.device)
    return damp * h.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)[:, None, None] * eye


def _inverse_factor(h: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor of (H + ridge)^-1 per group; the damping grows until H is positive definite
    (collinear synthetic inputs can make it singular)."""
    for factor in (1, 10, 100, 1000):
        chol, info = torch.linalg.cholesky_ex(h + _ridge(h, damp * factor))
        if not info.any():
            return torch.linalg.cholesky(torch.cholesky_inverse(chol), upper=True)
    raise FloatingPointError("GPTQ: the layer's input Hessian stays singular after 1000x damping")


def _round_columns(
    w: torch.Tensor, u: torch.Tensor, scale: torch.Tensor, grid: tuple[torch.Tensor, int, int] | None,
    mask: torch.Tensor | None,
) -> torch.Tensor:  # fmt: skip
    """GPTQ's pass over the columns of `w` (G, R, K): each rounded on its row's grid (`scale`, `grid`: zero point,
    qmin, qmax; None: float) and its error spread over the later columns through `u`; the rounded copy."""
    w = w.clone()
    for i in range(w.shape[-1]):
        col = w[:, :, i]
        if grid is None:
            chosen = col.clone()
        else:
            zero, qmin, qmax = grid
            chosen = (torch.clamp(torch.round(col / scale) + zero, qmin, qmax) - zero) * scale
        if mask is not None:
            chosen = chosen * mask[:, :, i]
        err = (col - chosen) / u[:, i, i][:, None]
        w[:, :, i:] -= err[:, :, None] * u[:, None, i, i:]
        w[:, :, i] = chosen
    return w


def _row_error(target: torch.Tensor, rounded: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """(G, R): each row's output error d H d^T for d = target - rounded."""
    d = target - rounded
    return torch.einsum("grk,gkl,grl->gr", d, h, d)


@torch.no_grad()
def gptq_layer(
    q: CompressedLayer, x: torch.Tensor, x_ref: torch.Tensor, damp: float, order: str, rows_per_feature: int = 128,
    weight_factors: list[float] | None = None,
) -> None:  # fmt: skip
    """Set `q`'s weight to GPTQ-rounded values on its grid (hardened), for inputs `x` (the layer's own) and
    `x_ref` (where the FP layer's target output comes from) of the same samples; the bias and input grid stay.
    `weight_factors`: each output channel's step also tries these multiples of its closed-form step (zero point
    fixed) and keeps the one whose rounded row is closest to the least-squares weight."""
    layer = q.layer
    groups = getattr(layer, "groups", 1)
    out = layer.weight.shape[0]
    w = layer.weight.detach().double().flatten(1)  # (out, in per group)
    w = w.view(groups, out // groups, -1)  # (G, R, K)
    h, cross = _moments(q, x, x_ref, rows_per_feature)
    # W*: the weight that best maps the layer's own (quantized) inputs to the target output.
    w = torch.linalg.solve(h + _ridge(h, damp), (w @ cross).transpose(1, 2)).transpose(1, 2)
    mask = None if q.mask is None else q.mask.flatten(1).view_as(w).double()
    perm = torch.arange(w.shape[-1], device=w.device).expand(groups, -1)
    if order == "descending":
        perm = h.diagonal(dim1=-2, dim2=-1).argsort(dim=-1, descending=True)
    inv = perm.argsort(dim=-1)
    w = w.gather(2, perm[:, None].expand_as(w)).clone()
    h = h.gather(1, perm[:, :, None].expand_as(h)).gather(2, perm[:, None, :].expand_as(h))
    if mask is not None:
        mask = mask.gather(2, perm[:, None].expand_as(mask))
    u = _inverse_factor(h, damp)  # (G, K, K)
    scale = q.w_scale.detach().double().flatten().view(groups, -1)  # (G, R)
    zero = q.w_zero_point.double().flatten().view(groups, -1)
    if q.wbits is None or not weight_factors:
        grid = None if q.wbits is None else (zero, *qrange(q.wbits, q.symmetric))
        w = _round_columns(w, u, scale, grid, mask)
    else:
        # Rows are solved independently for one H, so every candidate step of every row is solved in one pass (the
        # candidates as extra rows); each output channel keeps the step whose solution is closest to W* in H's
        # metric (its share of the layer's output error). Factor 1 first: it wins ties.
        factors = torch.tensor(list(dict.fromkeys([1.0, *weight_factors])), dtype=w.dtype, device=w.device)
        k, rows = len(factors), w.shape[1]
        steps = (scale[:, None] * factors[None, :, None]).flatten(1)  # (G, k*R), candidate-major
        grid = (zero.repeat(1, k), *qrange(q.wbits, q.symmetric))
        tiled = w.repeat(1, k, 1)
        rounded = _round_columns(tiled, u, steps, grid, None if mask is None else mask.repeat(1, k, 1))
        best = _row_error(tiled, rounded, h).view(groups, k, rows).argmin(1)  # (G, R)
        pick = best * rows + torch.arange(rows, device=w.device)  # row of each channel's winner
        w = rounded.gather(1, pick[..., None].expand_as(w))
        q.w_scale.copy_(steps.gather(1, pick).reshape(q.w_scale.shape).to(q.w_scale.dtype))
    w = w.gather(2, inv[:, None].expand_as(w))
    layer.weight.copy_(w.reshape(layer.weight.shape).to(layer.weight.dtype))


@torch.no_grad()
def search_input_step(
    q: CompressedLayer, x: torch.Tensor, x_ref: torch.Tensor, factors: list[float],
    solve: Callable[[torch.Tensor, torch.Tensor], None], samples: int = 256, chunk: int = 64,
) -> float:  # fmt: skip
    """Scale `q`'s input step (zero point fixed, as a learned step moves) by whichever of 1 and `factors` lets the
    layer solved on the first `samples` inputs (`solve(x, x_ref)` sets its weight from the state `q` is in)
    reproduce the FP layer's output on them best (squared error; ties keep 1; a candidate whose solve fails or gives a
    non-finite error is skipped): a subset ranks the steps at a fraction of a whole-pool solve. `q` ends in its
    starting state at that step, to be solved. Returns the factor."""
    x, x_ref = x[:samples], x_ref[:samples]
    start = {k: v.clone() for k, v in q.state_dict().items()}
    device = q.layer.weight.device
    target = [q.layer(x_ref[i : i + chunk].to(device)) for i in range(0, len(x), chunk)]

    def solved_error(factor: float) -> float:
        q.load_state_dict(start)
        q.a_scale.mul_(factor)
        try:
            solve(x, x_ref)
        except FloatingPointError:  # a step whose Hessian stays singular is no candidate
            return math.inf
        error = sum(float((q(x[i : i + chunk].to(device)) - t).pow(2).sum())
                    for i, t in zip(range(0, len(x), chunk), target, strict=True))  # fmt: skip
        return error if math.isfinite(error) else math.inf

    errors = {factor: solved_error(factor) for factor in dict.fromkeys([1.0, *factors])}
    best = min(errors, key=errors.__getitem__)
    q.load_state_dict(start)
    q.a_scale.mul_(best)
    return best
