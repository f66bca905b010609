"""Measuring the cost tables the solver needs: every layer on every capable backend at
the network's real shapes and batch, and the moves between backends, skipping
what can no longer be on the best plan."""
from __future__ import annotations

from dataclasses import dataclass, field

from genrecnn.engine import bench
from genrecnn.engine.autoplace.solve import INF
from genrecnn.engine.capability import can_run, required_ops
from genrecnn.errors import PlacementError


@dataclass
class Tables:
    """Measured cost tables for the DP (seconds), plus per-phase detail."""

    layer_costs: list[dict[str, float]]
    phases: list[dict[str, dict[str, float]]]
    edge_costs: list[dict[tuple, float]]
    in_costs: dict[str, float]
    out_costs: dict[str, float]
    pruned: list[list[str]] = field(default_factory=list)   # per layer: lower bounds only


def candidates(network, reg, optimizer: str | None) -> list[list[str]]:
    """Per layer, the available backends that declare its ops, the network's dtype and,
    for a layer of products, its precision."""
    out = []
    names = reg.available_names()
    for layer in network.layers:
        ok = [n for n in names
              if can_run(reg.get(n), layer, network.dtype, optimizer, network.precision)]
        if not ok:
            need = ", ".join(sorted(required_ops(layer, optimizer)))
            at = "" if layer.precision == "fp32" else f" at precision {layer.precision!r}"
            raise PlacementError(
                f"no available backend runs layer {layer.name!r} ({need}) in {network.dtype}"
                f"{at}; see `genrecnn backends`")
        out.append(ok)
    return out


class _Meter:
    """Times layers and moves of one network at one batch size, each move once."""

    def __init__(self, network, batch_size: int, reg, cands, optimizer, reps, budget):
        self.net, self.batch, self.reg, self.cands = network, batch_size, reg, cands
        self.optimizer, self.reps, self.budget = optimizer, reps, budget
        self.last = len(network.layers) - 1
        self._moves: dict[tuple, float] = {}

    def move(self, src: str | None, dst: str | None, shape) -> float:
        """Moving one array from ``src`` to ``dst`` (None: the host)."""
        key = (src, dst, tuple(shape))
        if key not in self._moves:
            # one timed copy after the warm-up: a copy's time is steady, and a large
            # one at batch 256 takes a tenth of a second
            self._moves[key] = bench.measure_transfer(
                self.reg.get(src) if src else None, self.reg.get(dst) if dst else None, shape,
                self.net.dtype, reps=1).median
        return self._moves[key]

    def edge(self, i: int, a: str, b: str) -> float:
        """Moving layer i's output from a to b and its gradient back."""
        shape = (self.batch, *self.net.layers[i].output_shape)
        return self.move(a, b, shape) + self.move(b, a, shape)

    def into(self, c: str) -> float:
        return self.move(None, c, (self.batch, *self.net.input_shape))

    def batch_in(self, c: str, streamed: bool) -> float:
        """What bringing each step's batch to c costs where c is the first layer's."""
        be = self.reg.get(c)
        if not be.supports("batch"):
            return self.into(c)
        if not streamed:
            return 0.0
        if not be.supports("staging"):
            return self.into(c)
        key = ("staged", c)
        if key not in self._moves:
            self._moves[key] = bench.measure_staged_upload(
                be, (self.batch, *self.net.input_shape), self.net.dtype).median
        return self._moves[key]

    def out(self, c: str) -> float:
        return self.move(c, None, (self.batch, self.net.n_classes))

    def worst_moves(self, i: int, c: str) -> float:
        """The most that moving data into and out of layer i on c can cost."""
        cands = self.cands
        before = (self.into(c) if i == 0
                  else max((self.edge(i - 1, a, c) for a in cands[i - 1] if a != c), default=0.0))
        after = (self.out(c) if i == self.last
                 else max((self.edge(i, c, d) for d in cands[i + 1] if d != c), default=0.0))
        return before + after

    def layer(self, i: int, n: str, abandon_after: float = INF,
              batch: int | None = None) -> bench.LayerTiming:
        layer = self.net.layers[i]
        return bench.measure_layer(
            self.reg.get(n), layer.config(), layer.input_shape, batch or self.batch,
            self.net.dtype, optimizer=self.optimizer if batch is None else None,
            reps=self.reps if batch is None else 1, budget=self.budget if batch is None else 0.0,
            abandon_after=None if abandon_after == INF else abandon_after,
            precision=self.net.precision)


def measure_tables(network, batch_size: int, reg, cands: list[list[str]],
                   optimizer: str | None, reps: int, budget: float,
                   streamed: bool = False) -> Tables:
    """Time every layer on each of its candidates at real shapes, then the moves the
    plan could make between the candidates that remain.

    First a whole plan on one backend (the fastest on a one-example probe of the
    first layer, where it runs every layer). A candidate whose forward alone
    (after a warm-up) takes over twice that whole plan can never be on the best
    plan; without such a plan, over twice what the best candidate of its layer
    could ever save it (its own time plus the dearest moves into and out of
    it). Such a candidate is not timed further and its cost is kept as a lower
    bound (``pruned``). No move between backends is measured for a pruned
    candidate, or one that makes even the fastest conceivable plan through it
    slower than the whole measured plan: a plan through it could only lose more.
    """
    m = _Meter(network, batch_size, reg, cands, optimizer, reps, budget)
    n_layers = len(network.layers)
    # Likely fastest first, so that slow candidates meet a tight bound: by the
    # previous layer's times, and for the first layer by a one-example probe.
    probe = ({n: m.layer(0, n, batch=1).forward.median for n in cands[0]}
             if len(cands[0]) > 1 else {})
    lead = min(cands[0], key=lambda n: probe.get(n, INF))
    timed: dict[tuple[int, str], bench.LayerTiming] = {}
    upper = INF
    if all(lead in c for c in cands) and any(len(c) > 1 for c in cands):
        for i in range(n_layers):
            timed[(i, lead)] = m.layer(i, lead)
        upper = m.into(lead) + m.out(lead) + sum(timed[(i, lead)].total for i in range(n_layers))
    layer_costs, phases, pruned = [], [], []
    for i, names in enumerate(cands):
        prev = layer_costs[-1] if layer_costs else probe
        costs, detail, cut = {}, {}, []
        bound = INF
        for n in sorted(names, key=lambda n: prev.get(n, INF)):
            t = timed.get((i, n)) or m.layer(i, n, 2 * (upper if upper < INF else bound))
            costs[n] = t.total
            detail[n] = {p: x.median for p, x in t.phases().items()}
            if t.pruned:
                cut.append(n)
            elif upper == INF:
                bound = min(bound, t.total + m.worst_moves(i, n))
        layer_costs.append({n: costs[n] for n in names})
        phases.append({n: detail[n] for n in names})
        pruned.append(cut)
    # Only candidates that could still be on the best plan need their moves measured:
    # not one that, with every other layer on its fastest backend and no move at
    # all, still takes longer than the whole measured plan.
    floor = [min(costs.values()) for costs in layer_costs]
    live = [[n for n in names if n not in cut and costs[n] - low + sum(floor) <= upper]
            for names, cut, costs, low in zip(cands, pruned, layer_costs, floor)]
    edge_costs = [{(a, b): m.edge(i, a, b) for a in live[i] for b in live[i + 1] if a != b}
                  for i in range(n_layers - 1)]
    # every single-backend plan has a sum; a backend that holds the training set (the
    # batch ops) uploads nothing per step, unless the set is streamed (then each batch
    # comes from page-locked memory where it has the staging ops); one that keeps the
    # loss reads nothing back
    in_costs = {b: m.batch_in(b, streamed) for b in cands[0]}
    out_costs = {b: 0.0 if reg.get(b).supports("train_loss") else m.out(b) for b in cands[-1]}
    return Tables(layer_costs, phases, edge_costs, in_costs, out_costs, pruned)
