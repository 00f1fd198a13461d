"""Choosing one width per layer under a budget: a multiple-choice knapsack over measured per-layer errors."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def choose(costs: Sequence[Sequence[float]], errors: Sequence[Sequence[float]], budget: float,
           units: int = 4000) -> list[int]:  # fmt: skip
    """One option per item, total cost <= `budget`, the least total error (errors taken as additive over items).

    Dynamic programming over the budget left above every item's cheapest option, in `units` steps; each option's
    extra cost is rounded up to whole steps, so the answer always fits the true budget. The steps' rounding then
    leaves some budget unused, which a greedy pass spends on the upgrades that lower the error most per unit of
    cost. Raises ValueError when even the cheapest options exceed the budget.
    """
    cheapest = [min(c) for c in costs]
    slack = budget - sum(cheapest)
    if slack < -1e-9 * max(1.0, abs(budget)):
        raise ValueError(f"the cheapest options cost {sum(cheapest):g}, over the budget {budget:g}")
    slack = max(0.0, slack)
    step = slack / units if slack > 0 else 1.0
    best = np.zeros(units + 1)  # best[u]: least error of the items so far with at most u steps of extra cost
    picks = []
    for cost, error, low in zip(costs, errors, cheapest, strict=True):
        extra = [math.ceil((c - low) / step - 1e-9) if slack > 0 else (0 if c <= low else units + 1) for c in cost]
        options = np.full((len(cost), units + 1), np.inf)
        for k, (x, e) in enumerate(zip(extra, error, strict=True)):
            if x <= units:
                options[k, x:] = best[: units + 1 - x] + e
        picks.append(options.argmin(axis=0))
        best = options.min(axis=0)
    chosen, left = [], units
    for pick, cost, low in zip(reversed(picks), reversed(costs), reversed(cheapest), strict=True):
        k = int(pick[left])
        chosen.append(k)
        left -= math.ceil((cost[k] - low) / step - 1e-9) if slack > 0 else 0
    chosen.reverse()
    return _spend_rest(chosen, costs, errors, budget)


def _spend_rest(chosen: list[int], costs: Sequence[Sequence[float]], errors: Sequence[Sequence[float]],
                budget: float) -> list[int]:  # fmt: skip
    """Greedy upgrades (to a costlier, less erring option) that still fit, best error drop per cost first."""
    spent = sum(c[k] for c, k in zip(costs, chosen, strict=True))
    while True:
        moves = [((errors[i][k] - errors[i][chosen[i]]) / (costs[i][k] - costs[i][chosen[i]]), i, k)
                 for i in range(len(chosen)) for k in range(len(costs[i]))
                 if costs[i][k] > costs[i][chosen[i]] and errors[i][k] < errors[i][chosen[i]]
                 and spent + costs[i][k] - costs[i][chosen[i]] <= budget]  # fmt: skip
        if not moves:
            return chosen
        _, i, k = min(moves)
        spent += costs[i][k] - costs[i][chosen[i]]
        chosen[i] = k
