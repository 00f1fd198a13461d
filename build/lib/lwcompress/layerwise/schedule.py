"""Units of layer runs: buckets of independent layers (one Lightning module each) and contiguous segments of a
sequential run (each sequential inside itself, independent of the others). Which rank runs which unit is decided
in `lwcompress.distributed`."""

from __future__ import annotations

from collections.abc import Sequence


def buckets(indices: Sequence[int], params: Sequence[int], max_params: int) -> list[list[int]]:
    """Consecutive groups of layers with at most `max_params` weights each (0: one bucket for all)."""
    if max_params <= 0:
        return [list(indices)] if indices else []
    out: list[list[int]] = []
    size = 0
    for i in indices:
        if out and size + params[i] <= max_params:
            out[-1].append(i)
            size += params[i]
        else:
            out.append([i])
            size = params[i]
    return out


def runs_of(keys: Sequence[object]) -> list[list[int]]:
    """Indices in order, neighbours with the same key (not None) together: a block's layers, every other alone."""
    groups: list[list[int]] = []
    for i, key in enumerate(keys):
        if groups and key is not None and keys[groups[-1][-1]] == key:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def segments(costs: Sequence[float], k: int, together: Sequence[object] | None = None) -> list[list[int]]:
    """The layer order cut into `k` contiguous segments of about equal total cost (one per layer at most): each
    segment ends once it holds its fair share of the cost still to be cut. `together`: per layer, a key (its block)
    that neighbours sharing it must not be cut apart by (None: no constraint)."""
    if together is not None and any(key is not None for key in together):
        groups = runs_of(together)
        cut = segments([sum(costs[i] for i in g) for g in groups], k)
        return [[i for g in seg for i in groups[g]] for seg in cut]
    n = len(costs)
    k = max(1, min(k, n))
    out: list[list[int]] = []
    current: list[int] = []
    remaining, acc = float(sum(costs)), 0.0
    for i, cost in enumerate(costs):
        current.append(i)
        acc += cost
        left = k - len(out)  # segments still to fill, this one included
        if left > 1 and (acc >= remaining / left or n - i - 1 == left - 1):
            out.append(current)
            remaining -= acc
            current, acc = [], 0.0
    return [*out, current]
