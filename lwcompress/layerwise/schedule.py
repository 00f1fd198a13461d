"""Which layers run where: layers are independent, so they are spread over ranks (devices / processes) by
estimated cost, and each rank's share is cut into buckets (one Lightning module each)."""

from __future__ import annotations

from collections.abc import Sequence


def assign(costs: Sequence[float], world_size: int, rank: int) -> list[int]:
    """Indices of the layers rank `rank` of `world_size` runs: greedy longest-first balancing of total cost.

    Every rank computes the same assignment from the same costs, so no communication is needed.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of {world_size}")
    loads = [0.0] * world_size
    owner = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(world_size), key=lambda r: (loads[r], r))
        owner[i] = r
        loads[r] += costs[i]
    return [i for i in range(len(costs)) if owner[i] == rank]


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
