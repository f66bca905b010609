"""``--backend auto``: measure every layer on every capable backend, then pick the
fastest placement of the whole chain with a dynamic programme.

Cost model of one training step for a plan b_0..b_{L-1} (one backend per layer)::

    in(host -> b_0) + sum_i layer_i(b_i)                      # fwd + bwd + update
      + sum_i [b_i != b_{i+1}] (move(b_i -> b_{i+1}) + move(b_{i+1} -> b_i))
      + out(b_{L-1} -> host)

where a layer's time is measured at the network's real shapes and batch size
(:mod:`genrecnn.engine.bench`) and a move is ``adopt`` of the boundary array (the
activation forward, its gradient backward). Transfers make the choice for one
layer depend on its neighbours, so a per-layer greedy choice can be wrong; the
DP over (layer, backend) is exact for a chain and costs O(L B^2).

Plans are cached per machine (hostname and GPU), architecture, dtype, batch
size, optimiser and set of available backends in ``$GENRECNN_CACHE/autoplace.json``
(or ``~/.cache/genrecnn/autoplace.json``), so a second run decides instantly.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from genrecnn.engine import bench
from genrecnn.errors import PlacementError
from genrecnn.fsutil import atomic_write_text

CACHE_VERSION = 1
# A single-backend plan within this fraction of the best mixed plan's predicted
# time wins: fewer moves, and no mixing on the strength of measurement noise.
PREFER_SINGLE_WITHIN = 0.03
# Real training steps per plan when a mixed plan is checked against one backend.
VALIDATE_STEPS = 3
# ... against each single backend predicted within this factor of the mixed plan (up to 3).
VALIDATE_FACTOR = 3.0
# A single plan is checked the same way against other single plans predicted this close.
CLOSE_SINGLES = 0.15
INF = float("inf")


# -- the dynamic programme ----------------------------------------------------------------

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


# -- the report saved with the model ------------------------------------------------------

@dataclass
class LayerChoice:
    """One layer's measured times (seconds, medians) and the chosen backend."""

    name: str
    kind: str
    shape: list[int]
    chosen: str
    total_s: dict[str, float]
    phases_s: dict[str, dict[str, float]]
    pruned: list[str] = field(default_factory=list)    # timed in part: a lower bound


@dataclass
class PlanReport:
    """What ``--backend auto`` measured and decided; ``as_dict()`` fits model meta."""

    key: str
    machine: str
    dtype: str
    batch_size: int
    optimizer: str | None
    backends: list[str]
    plan: list[str]
    predicted_s: float
    layers: list[LayerChoice]
    edges_s: list[dict[str, float]]        # per boundary, "a>b": both directions
    input_s: dict[str, float]
    output_s: dict[str, float]
    greedy_plan: list[str]
    greedy_s: float
    single_s: dict[str, float]             # each whole-network single placement, predicted
    measured_in_s: float
    created: str
    cached: bool = False
    notes: list[str] = field(default_factory=list)
    validation_s: dict[str, float] = field(default_factory=dict)   # real step medians

    def as_dict(self) -> dict:
        d = asdict(self)
        d["single_s"] = {k: (None if v == INF else v) for k, v in self.single_s.items()}
        d["greedy_s"] = None if self.greedy_s == INF else self.greedy_s
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PlanReport":
        d = dict(d)
        d["layers"] = [LayerChoice(**x) for x in d["layers"]]
        d["single_s"] = {k: (INF if v is None else v) for k, v in d["single_s"].items()}
        d["greedy_s"] = INF if d["greedy_s"] is None else d["greedy_s"]
        return cls(**d)

    def format(self) -> str:
        """A table of the measured times and the plan, for people."""
        ms = lambda s: "-" if s is None or s == INF else f"{s * 1e3:.2f}"   # noqa: E731
        w = max(9, *(len(b) + 2 for b in self.backends))
        how = (f"cached plan measured {self.created}" if self.cached
               else f"measured in {self.measured_in_s:.1f} s")
        lines = [f"auto placement: batch {self.batch_size}, {self.dtype}, "
                 f"{self.optimizer or 'no'} update, {how}; median ms per training step "
                 f"(forward + backward + update)",
                 f"  {'layer':<9} {'kind':<8}" + "".join(f"{b:>{w}}" for b in self.backends)
                 + "   chosen"]
        for lc in self.layers:
            cell = lambda b: ((">" if b in lc.pruned else "")    # noqa: E731
                              + ms(lc.total_s.get(b)))
            lines.append(f"  {lc.name:<9} {lc.kind:<8}"
                         + "".join(f"{cell(b):>{w}}" for b in self.backends)
                         + f"   {lc.chosen}")
        moves = [f"{self.layers[i].name}->{self.layers[i + 1].name} "
                 f"{self.plan[i]}>{self.plan[i + 1]} "
                 f"{ms(self.edges_s[i].get(f'{self.plan[i]}>{self.plan[i + 1]}'))} ms"
                 for i in range(len(self.plan) - 1) if self.plan[i] != self.plan[i + 1]]
        lines.append(f"  input host>{self.plan[0]} {ms(self.input_s.get(self.plan[0]))} ms, "
                     f"output {self.plan[-1]}>host {ms(self.output_s.get(self.plan[-1]))} ms; "
                     f"moves: {'; '.join(moves) or 'none'}")
        bounded = {b for lc in self.layers for b in lc.pruned}
        singles = ", ".join(f"{b} only {'>' if b in bounded else ''}{ms(s)}"
                            for b, s in self.single_s.items())
        lines.append(f"  predicted step: auto {ms(self.predicted_s)} ms; greedy per layer "
                     f"{ms(self.greedy_s)} ms; {singles} ms")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


_LAST: PlanReport | None = None


def last_plan_report() -> PlanReport | None:
    """The report of the latest :func:`auto_plan` in this process (to store with a model)."""
    return _LAST


# -- cache --------------------------------------------------------------------------------

def cache_path() -> Path:
    """``$GENRECNN_CACHE/autoplace.json``, else ``~/.cache/genrecnn/autoplace.json``."""
    root = os.environ.get("GENRECNN_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "genrecnn"
    return base / "autoplace.json"


@lru_cache(maxsize=1)
def machine_id() -> str:
    """Hostname plus the GPU names nvidia-smi reports (if any): plans are per machine."""
    gpus = ""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            gpus = ";".join(s.strip() for s in out.stdout.splitlines() if s.strip())
        except (OSError, subprocess.SubprocessError):
            gpus = "nvidia-smi failed"
    return f"{socket.gethostname()}|{gpus or 'no-gpu'}"


def plan_key(network, batch_size: int, optimizer: str | None, backends: list[str]) -> str:
    arch = json.dumps({"layers": network.config(), "input": list(network.input_shape)},
                      sort_keys=True)
    digest = hashlib.sha1(arch.encode()).hexdigest()[:12]
    return (f"{machine_id()}|arch {digest}|{network.dtype}|batch {batch_size}|"
            f"opt {optimizer or '-'}|{','.join(sorted(backends))}")


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    return data.get("entries", {}) if isinstance(data.get("entries"), dict) else {}


def _write_cache(path: Path, key: str, report: PlanReport) -> None:
    entries = _read_cache(path)
    entries[key] = report.as_dict()
    atomic_write_text(path, json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1))


# -- measuring ----------------------------------------------------------------------------

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
    """Per layer, the available backends that declare its ops and the network's dtype."""
    out = []
    names = reg.available_names()
    for layer in network.layers:
        ok = [n for n in names
              if bench.can_run(reg.get(n), layer.kind, network.dtype, bool(layer.params),
                               optimizer)]
        if not ok:
            need = ", ".join(sorted(bench.required_ops(layer.kind, bool(layer.params),
                                                       optimizer)))
            raise PlacementError(
                f"no available backend runs layer {layer.name!r} ({need}) in {network.dtype}; "
                f"see `genrecnn backends`")
        out.append(ok)
    return out


def measure_tables(network, batch_size: int, reg, cands: list[list[str]],
                   optimizer: str | None, reps: int, budget: float) -> Tables:
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
    dtype = network.dtype
    layers = network.layers
    last = len(layers) - 1
    moves: dict[tuple, float] = {}

    def move(src: str | None, dst: str | None, shape) -> float:
        key = (src, dst, tuple(shape))
        if key not in moves:
            # one timed copy after the warm-up: a copy's time is steady, and a large
            # one at batch 256 takes a tenth of a second
            moves[key] = bench.measure_transfer(
                reg.get(src) if src else None, reg.get(dst) if dst else None, shape, dtype,
                reps=1).median
        return moves[key]

    def edge(i: int, a: str, b: str) -> float:
        """Moving layer i's output from a to b and its gradient back."""
        shape = (batch_size, *layers[i].output_shape)
        return move(a, b, shape) + move(b, a, shape)

    def into(c: str) -> float:
        return move(None, c, (batch_size, *network.input_shape))

    def out(c: str) -> float:
        return move(c, None, (batch_size, network.n_classes))

    def worst_moves(i: int, c: str) -> float:
        """The most that moving data into and out of layer i on c can cost."""
        before = (into(c) if i == 0
                  else max((edge(i - 1, a, c) for a in cands[i - 1] if a != c), default=0.0))
        after = (out(c) if i == last
                 else max((edge(i, c, d) for d in cands[i + 1] if d != c), default=0.0))
        return before + after

    def measure(i: int, n: str, abandon_after: float) -> bench.LayerTiming:
        layer = layers[i]
        return bench.measure_layer(reg.get(n), layer.config(), layer.input_shape, batch_size,
                                   dtype, optimizer=optimizer, reps=reps, budget=budget,
                                   abandon_after=None if abandon_after == INF else abandon_after)

    # Likely fastest first, so that slow candidates meet a tight bound: by the
    # previous layer's times, and for the first layer by a one-example probe.
    probe = {n: bench.measure_layer(reg.get(n), layers[0].config(), layers[0].input_shape, 1,
                                    dtype, reps=1, budget=0.0).forward.median
             for n in cands[0]} if len(cands[0]) > 1 else {}
    lead = min(cands[0], key=lambda n: probe.get(n, INF))
    timed: dict[tuple[int, str], bench.LayerTiming] = {}
    upper = INF
    if all(lead in c for c in cands) and any(len(c) > 1 for c in cands):
        for i in range(len(layers)):
            timed[(i, lead)] = measure(i, lead, INF)
        upper = into(lead) + out(lead) + sum(timed[(i, lead)].total for i in range(len(layers)))
    layer_costs, phases, pruned = [], [], []
    for i, (layer, names) in enumerate(zip(layers, cands)):
        prev = layer_costs[-1] if layer_costs else probe
        order = sorted(names, key=lambda n: prev.get(n, INF))
        costs, detail, cut = {}, {}, []
        bound = INF
        for n in order:
            t = timed.get((i, n)) or measure(i, n, 2 * (upper if upper < INF else bound))
            costs[n] = t.total
            detail[n] = {p: x.median for p, x in t.phases().items()}
            if t.pruned:
                cut.append(n)
            elif upper == INF:
                bound = min(bound, t.total + worst_moves(i, n))
        layer_costs.append({n: costs[n] for n in names})
        phases.append({n: detail[n] for n in names})
        pruned.append(cut)
    # Only candidates that could still be on the best plan need their moves measured:
    # not one that, with every other layer on its fastest backend and no move at
    # all, still takes longer than the whole measured plan.
    floor = [min(costs.values()) for costs in layer_costs]
    live = [[n for n in names if n not in cut and costs[n] - low + sum(floor) <= upper]
            for names, cut, costs, low in zip(cands, pruned, layer_costs, floor)]
    edge_costs = [{(a, b): edge(i, a, b) for a in live[i] for b in live[i + 1] if a != b}
                  for i in range(last)]
    in_costs = {b: into(b) for b in cands[0]}        # every single-backend plan has a sum
    out_costs = {b: out(b) for b in cands[-1]}
    return Tables(layer_costs, phases, edge_costs, in_costs, out_costs, pruned)


def decide(network, tables: Tables, names: list[str], *, key: str = "", batch_size: int = 0,
           optimizer: str | None = None, measured_in_s: float = 0.0,
           prefer_single_within: float = PREFER_SINGLE_WITHIN) -> PlanReport:
    """Run the DP on measured tables and assemble the report."""
    args = (tables.layer_costs, tables.edge_costs, tables.in_costs, tables.out_costs)
    plan, total = solve_chain(*args)
    singles = {b: plan_cost([b] * len(plan), *args) for b in names}
    greedy = greedy_plan(tables.layer_costs)
    notes = []
    cut = tables.pruned or [[] for _ in plan]
    exact = {b: t for b, t in singles.items() if not any(b in c for c in cut)}
    best_single = min(exact, key=exact.get) if exact else None
    if (best_single and len(set(plan)) > 1 and singles[best_single] < INF
            and singles[best_single] <= total * (1 + prefer_single_within)):
        notes.append(f"mixed plan predicted {total * 1e3:.2f} ms; {best_single} alone "
                     f"{singles[best_single] * 1e3:.2f} ms is within "
                     f"{prefer_single_within:.0%}: keeping one backend")
        plan, total = [best_single] * len(plan), singles[best_single]
    layers = [LayerChoice(layer.name, layer.kind, [batch_size, *layer.input_shape], b,
                          dict(costs), phases, list(pruned))
              for layer, b, costs, phases, pruned in zip(network.layers, plan,
                                                         tables.layer_costs, tables.phases, cut)]
    if any(cut):
        notes.append("'>' marks a backend timed only in part (forward, or forward and "
                     "backward): already slower than the best choice could ever make up "
                     "(single-backend sums are lower bounds)")
    return PlanReport(
        key=key, machine=machine_id(), dtype=network.dtype, batch_size=batch_size,
        optimizer=optimizer, backends=list(names), plan=plan, predicted_s=total,
        layers=layers,
        edges_s=[{f"{a}>{b}": v for (a, b), v in e.items()} for e in tables.edge_costs],
        input_s=dict(tables.in_costs), output_s=dict(tables.out_costs),
        greedy_plan=greedy, greedy_s=plan_cost(greedy, *args), single_s=singles,
        measured_in_s=measured_in_s, created=time.strftime("%Y-%m-%d %H:%M:%S"), notes=notes)


def _validate(network, report: PlanReport, reg, cands, batch_size: int,
              optimizer: str | None, steps: int, within: float) -> None:
    """Time real training steps where the per-layer sums cannot be trusted to decide.

    A mixed plan is timed against the most promising single plans and kept only
    if it beats the fastest of them by ``within``. A single plan is timed against
    the other single plans predicted within CLOSE_SINGLES of it, and the fastest
    measured one is kept."""
    singles = {b: t for b, t in report.single_s.items()
               if t < INF and all(b in c for c in cands)}   # lower bounds where pruned
    ranked = sorted(singles, key=singles.get)
    mixed = len(set(report.plan)) > 1
    if mixed:
        rivals = [b for b in ranked if singles[b] <= VALIDATE_FACTOR * report.predicted_s][:3]
        rivals = rivals or ranked[:1]
    else:
        rivals = [b for b in ranked if b != report.plan[0]
                  and singles[b] <= (1 + CLOSE_SINGLES) * report.predicted_s][:2]
        if rivals:
            rivals.insert(0, report.plan[0])
    if not rivals:
        return
    plans = {b: [b] * len(report.plan) for b in rivals}
    if mixed:
        plans["mixed"] = list(report.plan)
    samples = time_plans(lambda: clone_network(network), plans, reg, batch_size, optimizer,
                         reps=steps, warmup=1)
    med = {label: statistics.median(ts) for label, ts in samples.items()}
    report.validation_s = {("mixed" if k == "mixed" else f"{k} only"): v for k, v in med.items()}
    best = min(rivals, key=med.get)
    if not mixed:
        others = ", ".join(f"{b} alone {med[b] * 1e3:.2f} ms" for b in rivals)
        report.notes.append(f"single backends predicted within {CLOSE_SINGLES:.0%}; measured "
                            f"training steps: {others}: keeping {best}")
    elif med[best] <= med["mixed"] * (1 + within):
        report.notes.append(
            f"measured training steps: mixed plan {med['mixed'] * 1e3:.2f} ms, {best} alone "
            f"{med[best] * 1e3:.2f} ms: keeping {best} (the per-layer sum predicted "
            f"{report.predicted_s * 1e3:.2f} ms for the mixed plan)")
    else:
        report.notes.append(f"measured training steps: mixed plan {med['mixed'] * 1e3:.2f} ms "
                            f"beats {', '.join(f'{b} alone {med[b] * 1e3:.2f} ms' for b in rivals)}")
        return
    report.plan = [best] * len(report.plan)
    report.predicted_s = singles[best]
    for lc, b in zip(report.layers, report.plan):
        lc.chosen = b


def auto_plan(network, batch_size: int, echo=print, *, registry=None,
              optimizer: str | None = "adam", reps: int = 3, budget: float = 0.2,
              refresh: bool = False, use_cache: bool = True,
              prefer_single_within: float = PREFER_SINGLE_WITHIN,
              validate_steps: int = VALIDATE_STEPS) -> list[str]:
    """The measured fastest backend per layer of ``network`` at ``batch_size``.

    Measures forward + backward (+ the ``optimizer``'s update for layers with
    parameters) on every available backend that declares the layer's ops and
    the network's dtype, plus the moves between them, solves the chain with
    :func:`solve_chain`, prints the table through ``echo`` and returns one
    backend name per layer. The plan is cached (see :func:`cache_path`);
    ``refresh`` measures again. A single-backend plan within
    ``prefer_single_within`` of the best mixed one is kept instead. A mixed
    plan must then also win ``validate_steps`` real training steps against the
    single-backend plans predicted within VALIDATE_FACTOR of it (timed in turn),
    since per-layer times add up only approximately (a move between devices
    also stalls the device's queue); a single-backend plan with another predicted
    within CLOSE_SINGLES is decided by real training steps the same way.
    :func:`last_plan_report` gives the details.
    """
    global _LAST
    if batch_size < 1:
        raise PlacementError(f"batch size must be at least 1 for --backend auto, got {batch_size}")
    from genrecnn.engine.registry import registry as default_registry
    reg = registry or getattr(network, "_registry", None) or default_registry()
    cands = candidates(network, reg, optimizer)
    names = sorted({n for c in cands for n in c})
    key = plan_key(network, batch_size, optimizer, names)
    path = cache_path()
    if use_cache and not refresh:
        hit = _read_cache(path).get(key)
        if hit:
            try:
                report = PlanReport.from_dict(hit)
            except (TypeError, KeyError, ValueError):
                report = None
            if (report and len(report.plan) == len(network.layers)
                    and all(b in c for b, c in zip(report.plan, cands))):
                report.cached = True
                _LAST = report
                echo(report.format())
                return list(report.plan)
    echo(f"auto placement: measuring {len(network.layers)} layers on "
         f"{', '.join(names)} at batch {batch_size} ...")
    t0 = time.perf_counter()
    tables = measure_tables(network, batch_size, reg, cands, optimizer, reps, budget)
    report = decide(network, tables, names, key=key, batch_size=batch_size, optimizer=optimizer,
                    prefer_single_within=prefer_single_within)
    if validate_steps:
        _validate(network, report, reg, cands, batch_size, optimizer, validate_steps,
                  prefer_single_within)
    report.measured_in_s = time.perf_counter() - t0
    if use_cache:
        _write_cache(path, key, report)
    _LAST = report
    echo(report.format())
    return list(report.plan)


# -- whole training steps -----------------------------------------------------------------

def clone_network(network):
    """A fresh network of the same layers, shapes and dtype (new weights; for timing)."""
    from genrecnn.engine.layers import layer_from_config
    from genrecnn.engine.network import Network
    return Network([layer_from_config(c) for c in network.config()], network.input_shape,
                   dtype=network.dtype)


def time_plans(make_network, plans: dict[str, list[str]], reg, batch_size: int,
               optimizer: str | None, *, reps: int = 5, warmup: int = 2, seed: int = 0
               ) -> dict[str, list[float]]:
    """Seconds per training step (loss, gradients, optimiser step, synchronised) of a
    network from ``make_network()`` under each plan, timed in interleaved rounds so
    that drifting machine load hits every plan alike."""
    import numpy as np

    from genrecnn.engine.optim import make_optimizer
    steps = {}
    for label, plan in plans.items():
        net = make_network()
        net.place(list(plan), registry=reg)
        opt = make_optimizer(optimizer or "sgd")
        used = list({id(b): b for b in net.backends}.values())
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((batch_size, *net.input_shape)).astype(net.dtype)
        y = rng.integers(0, net.n_classes, batch_size).astype(np.int32)

        def step(net=net, opt=opt, used=used, x=x, y=y):
            net.loss_and_grads(x, y)
            opt.step(net)
            for b in used:
                b.synchronize()
        for _ in range(warmup):
            step()
        steps[label] = step
    samples: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(reps):
        for label, step in steps.items():
            t0 = time.perf_counter()
            step()
            samples[label].append(time.perf_counter() - t0)
    return samples


# -- proof: auto against every single-backend placement -----------------------------------

def compare_with_single(make_network, batch_size: int, *, registry=None,
                        backends: list[str] | None = None, optimizer: str = "adam",
                        reps: int = 5, warmup: int = 2, seed: int = 0, echo=print) -> dict:
    """Time whole training steps (loss, gradients, optimiser step) under a freshly
    measured auto plan and under each single backend that runs every layer.

    ``make_network()`` builds the same network each call. Placements are timed
    in interleaved rounds, so drifting machine load hits them all alike.
    Returns {"rows": [...], "auto": plan, "best_single": name, "ratio": auto/best}.
    """
    from genrecnn.engine.registry import registry as default_registry

    reg = registry or default_registry()
    names = [n for n in (backends or reg.available_names()) if n in reg.available_names()]
    sub = RegistryView(reg, names)
    probe = make_network()
    plan = auto_plan(probe, batch_size, echo=echo, registry=sub, optimizer=optimizer,
                     refresh=True)
    cands = candidates(probe, sub, optimizer)
    placements = {"auto": plan}
    same = None                    # the single placement auto chose, timed once as auto
    for n in names:
        if plan == [n] * len(plan):
            same = f"{n} only"
        elif all(n in c for c in cands):
            placements[f"{n} only"] = [n] * len(plan)
    samples = time_plans(make_network, placements, reg, batch_size, optimizer, reps=reps,
                         warmup=warmup, seed=seed)

    rows = []
    for label, ts in samples.items():
        t = bench.Timing(ts)
        rows.append({"placement": label, "plan": ",".join(placements[label]),
                     "batch_size": batch_size, **t.as_dict()})
    singles = [r for r in rows if r["placement"] != "auto"]
    auto = rows[0]
    best = min(singles, key=lambda r: r["median_s"]) if singles else None
    echo(f"training step ({optimizer}), batch {batch_size}, median of {reps} interleaved "
         f"rounds after {warmup} warm-up steps:")
    echo(f"  {'placement':<16}{'median ms':>11}{'p25..p75 ms':>20}{'vs auto':>9}")
    for r in rows:
        echo(f"  {r['placement']:<16}{r['median_s'] * 1e3:>11.1f}"
             f"{r['p25_s'] * 1e3:>11.1f}..{r['p75_s'] * 1e3:<8.1f}"
             f"{r['median_s'] / auto['median_s']:>8.2f}x")
    if same:
        echo(f"  (auto chose {same}: the same placement, timed once)")
    result = {"rows": rows, "auto": plan, "same_as": same, "best_single": None, "ratio": None,
              "verdict": "" if singles else "ok"}
    if best:
        ratio = auto["median_s"] / best["median_s"]
        noise = max((best["p75_s"] - best["p25_s"]) / best["median_s"],
                    (auto["p75_s"] - auto["p25_s"]) / auto["median_s"], 0.05)
        ok = ratio <= 1 + noise
        result.update(best_single=best["placement"], ratio=ratio,
                      verdict="ok" if ok else "slower")
        echo(f"auto / best single ({best['placement']}): {ratio:.3f} "
             f"(noise allowance {noise:.1%}): "
             + ("auto is not slower" if ok else "AUTO IS SLOWER than the best single placement"))
    return result


class RegistryView:
    """A registry limited to some backend names (``--backends`` for the comparison)."""

    def __init__(self, reg, names: list[str]):
        self._reg, self._names = reg, sorted(n for n in names if n in reg.names())

    def available_names(self) -> list[str]:
        return [n for n in self._reg.available_names() if n in self._names]

    def names(self) -> list[str]:
        return list(self._names)

    def get(self, name: str):
        return self._reg.get(name)
