"""Magnitude pruning masks: which weights of each layer are kept (True) and which become exact zeros.

Unstructured masks keep each layer's largest |w|, either the same fraction of every layer ("uniform") or one
threshold over all layers at once ("global": layers whose weights are large after BN folding keep more).
N:M masks keep the N largest of every M consecutive input-channel weights at one kernel position, the layout sparse
tensor cores accelerate (2:4); a layer whose input channels per group are not a multiple of M (depthwise convs, the
one-channel image layer) cannot carry the pattern and stays dense, as NVIDIA's ASP does.
"""

from __future__ import annotations

import torch


def parse_pattern(pattern: str) -> tuple[int, int] | None:
    """(N, M) of an "N:M" pattern; None for "unstructured". Raises ValueError on anything else."""
    if pattern == "unstructured":
        return None
    parts = pattern.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or not 0 < int(parts[0]) < int(parts[1]):
        raise ValueError(f"pattern must be 'unstructured' or 'N:M' with 0 < N < M, not '{pattern}'")
    return int(parts[0]), int(parts[1])


def keep_largest(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Mask keeping the round((1 - sparsity) * numel) largest-magnitude weights (ties broken by position)."""
    keep = round((1 - sparsity) * weight.numel())
    mask = torch.zeros(weight.numel(), dtype=torch.bool)
    mask[weight.detach().abs().flatten().argsort(descending=True, stable=True)[:keep]] = True
    return mask.view_as(weight)


def n_m_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor | None:
    """Keep the n largest |w| of every m consecutive input channels at each kernel position; None if the layer's
    input channels are not a multiple of m."""
    if weight.shape[1] % m:
        return None
    w = weight.detach().abs().movedim(1, -1)  # (out, kh, kw, in): groups run along the input channels
    groups = w.reshape(-1, m)
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(1, groups.topk(n, dim=1).indices, True)
    return mask.view(w.shape).movedim(-1, 1).contiguous()


def magnitude_masks(
    weights: dict[str, torch.Tensor], sparsity: dict[str, float], allocation: str, pattern: str
) -> dict[str, torch.Tensor | None]:
    """One mask per layer (None: the layer stays dense).

    `sparsity` gives each layer's target fraction of zeros. "uniform" prunes each layer to its own target;
    "global" ranks all layers that share the most common target together, so that fraction is reached over them in
    total (layers with their own target, e.g. a first layer kept dense, are pruned to it on their own).
    """
    n_m = parse_pattern(pattern)
    if n_m is not None:
        return {name: n_m_mask(w, *n_m) if sparsity[name] > 0 else None for name, w in weights.items()}
    masks: dict[str, torch.Tensor | None] = {}
    if allocation == "global" and weights:
        common = max(set(sparsity.values()), key=lambda s: sum(v == s for v in sparsity.values()))
        shared = [n for n in weights if sparsity[n] == common]
        flat = torch.cat([weights[n].detach().abs().flatten() for n in shared])
        keep = keep_largest(flat, common)
        offset = 0
        for n in shared:
            size = weights[n].numel()
            masks[n] = keep[offset : offset + size].view_as(weights[n])
            offset += size
    elif allocation != "uniform":
        raise ValueError(f"unknown sparsity allocation '{allocation}'")
    for name, w in weights.items():
        if name not in masks:
            masks[name] = keep_largest(w, sparsity[name]) if sparsity[name] > 0 else None
    # A mask that keeps everything is no mask: the layer stays dense.
    return {n: None if masks[n] is None or bool(masks[n].all()) else masks[n] for n in weights}
