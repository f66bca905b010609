"""The chain solver: the cheapest backend per layer, moves between backends included.

Cost model of one training step for a plan b_0..b_{L-1} (one backend per layer)::

    in(host -> b_0) + sum_i layer_i(b_i)                      # fwd + bwd + update
      + sum_i [b_i != b_{i+1}] (move(b_i -> b_{i+1}) + move(b_{i+1} -> b_i))
      + out(b_{L-1} -> host)

Transfers make the choice for one layer depend on its neighbours, so a
per-layer greedy choice can be wrong; the dynamic programme over
(layer, backend) is exact for a chain and costs O(L B^2).
"""
from __future__ import annotations

from genrecnn.errors import PlacementError

INF = float("inf")


def _edge(edges: dict, a: str, b: str) -> float:
    return 0.0 if a == b else edges.get((a, b), INF)


def plan_cost(plan: list[str], layer_costs, edge_costs, in_costs, out_costs) -> float:
    """Predicted time of ``plan`` under the cost tables (inf if it uses a missing entry)."""
    total = in_costs.get(plan[0], INF) + out_costs.get(plan[-1], INF)
    for i, b in enumerate(plan):
        total += layer_costs[i].get(b, INF)
        if i:
            total += _edge(edge_costs[i - 1], plan[i - 1], b)
    return total


def solve_chain(layer_costs: list[dict[str, float]], edge_costs: list[dict[tuple, float]],
                in_costs: dict[str, float], out_costs: dict[str, float]
                ) -> tuple[list[str], float]:
    """The cheapest backend per layer for a chain of layers.

    ``layer_costs[i][b]``: time of layer i on backend b (absent: b cannot run it);
    ``edge_costs[i][(a, b)]``: moving layer i's output from a to b and its
    gradient back (a != b); ``in_costs[b]``/``out_costs[b]``: the input from the
    host to b and the output from b to the host. Returns (plan, predicted time).
    """
    if not layer_costs:
        raise PlacementError("the network has no layers to place")
    best = {b: in_costs.get(b, INF) + c for b, c in layer_costs[0].items()}
    back: list[dict[str, str]] = []
    for i in range(1, len(layer_costs)):
        nxt, arg = {}, {}
        for b, c in layer_costs[i].items():
            prev = min(best, key=lambda a: best[a] + _edge(edge_costs[i - 1], a, b))
            nxt[b] = best[prev] + _edge(edge_costs[i - 1], prev, b) + c
            arg[b] = prev
        best = nxt
        back.append(arg)
    last = min(best, key=lambda b: best[b] + out_costs.get(b, INF))
    total = best[last] + out_costs.get(last, INF)
    if total == INF:
        raise PlacementError("no placement can run every layer with the measured transfers; "
                             "check `genrecnn backends` for available backends")
    plan = [last]
    for arg in reversed(back):
        plan.append(arg[plan[-1]])
    return plan[::-1], total


def greedy_plan(layer_costs: list[dict[str, float]]) -> list[str]:
    """Each layer on its own fastest backend, ignoring transfers (for comparison)."""
    return [min(c, key=c.get) for c in layer_costs]
