"""From measured tables to a plan: solve the chain, prefer one backend when mixing
gains too little, and time real training steps where per-layer sums cannot decide."""
from __future__ import annotations

import statistics
import time

from genrecnn.engine.autoplace.cache import machine_id
from genrecnn.engine.autoplace.measure import Tables
from genrecnn.engine.autoplace.report import LayerChoice, PlanReport
from genrecnn.engine.autoplace.solve import INF, greedy_plan, plan_cost, solve_chain
from genrecnn.engine.autoplace.timing import clone_network, time_plans

# A single-backend plan within this fraction of the best mixed plan's predicted
# time wins: fewer moves, and no mixing on the strength of measurement noise.
PREFER_SINGLE_WITHIN = 0.03
# Real training steps per plan when a mixed plan is checked against one backend.
VALIDATE_STEPS = 3
# ... against each single backend predicted within this factor of the mixed plan (up to 3).
VALIDATE_FACTOR = 3.0
# A single plan is checked the same way against other single plans predicted this close.
CLOSE_SINGLES = 0.15


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


def validate(network, report: PlanReport, reg, cands, batch_size: int,
              optimizer: str | None, steps: int, within: float, streamed: bool = False) -> None:
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
                         reps=steps, warmup=1, streamed=streamed)
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
