"""``--backend auto``: measure every layer on every capable backend, then pick the
fastest placement of the whole chain (solve, measure, cache, decide, report).

:func:`auto_plan` returns a :class:`PlanReport` (its ``plan`` is one backend
name per layer) that the caller prints and saves with the model;
:func:`place_by_option` is what the CLI's ``--backend`` option does.
"""
from __future__ import annotations

import time

from genrecnn.engine.autoplace.cache import cache_path, plan_key, read_cache, write_cache
from genrecnn.engine.autoplace.choose import PREFER_SINGLE_WITHIN, VALIDATE_STEPS, decide, validate
from genrecnn.engine.autoplace.measure import candidates, measure_tables
from genrecnn.engine.autoplace.report import PlanReport
from genrecnn.engine.placement import AUTO, format_plan, resolve_placement
from genrecnn.engine.registry import registry as default_registry
from genrecnn.errors import PlacementError

__all__ = ["PlanReport", "auto_plan", "place_by_option"]


def _cached(network, key: str, cands) -> PlanReport | None:
    hit = read_cache(cache_path()).get(key)
    if not hit:
        return None
    try:
        report = PlanReport.from_dict(hit)
    except (TypeError, KeyError, ValueError):
        return None
    if len(report.plan) != len(network.layers) or not all(
            b in c for b, c in zip(report.plan, cands)):
        return None
    report.cached = True
    return report


def auto_plan(network, batch_size: int, *, registry=None, optimizer: str | None = "adam",
              reps: int = 3, budget: float = 0.2, refresh: bool = False, use_cache: bool = True,
              prefer_single_within: float = PREFER_SINGLE_WITHIN,
              validate_steps: int = VALIDATE_STEPS, streamed: bool = False,
              echo=None) -> PlanReport:
    """The measured fastest backend per layer of ``network`` at ``batch_size``.

    Measures forward + backward (+ the ``optimizer``'s update for layers with
    parameters) on every available backend that can run the layer in the
    network's dtype, plus the moves between them, and solves the chain. A
    single-backend plan within ``prefer_single_within`` of the best mixed one is
    kept instead; a mixed plan must also win ``validate_steps`` real training
    steps against the most promising single backends, since per-layer times add
    up only approximately (a move between devices also stalls the device's
    queue), and close single backends are decided by real steps too. The plan
    is cached per machine (:func:`cache_path`); ``refresh`` measures again.
    ``streamed`` says the training set is too big to stay on the device: a backend
    that holds batches then pays each batch's upload from page-locked memory
    (counted in full by the sums; the measured steps overlap it with compute, as
    training does), and the plan is cached apart from the resident one.
    ``echo`` hears one line before a measurement starts.
    """
    if batch_size < 1:
        raise PlacementError(f"batch size must be at least 1 for --backend auto, got {batch_size}")
    reg = registry or getattr(network, "_registry", None) or default_registry()
    cands = candidates(network, reg, optimizer)
    names = sorted({n for c in cands for n in c})
    key = plan_key(network, batch_size, optimizer, names, streamed)
    if use_cache and not refresh:
        report = _cached(network, key, cands)
        if report is not None:
            return report
    if echo:
        echo(f"auto placement: measuring {len(network.layers)} layers on "
             f"{', '.join(names)} at batch {batch_size} ...")
    t0 = time.perf_counter()
    tables = measure_tables(network, batch_size, reg, cands, optimizer, reps, budget,
                            streamed)
    report = decide(network, tables, names, key=key, batch_size=batch_size, optimizer=optimizer,
                    prefer_single_within=prefer_single_within)
    if streamed:
        report.notes.append("training set over --resident-mb: every batch is uploaded "
                            "from the host, and that is counted")
    if validate_steps:
        validate(network, report, reg, cands, batch_size, optimizer, validate_steps,
                 prefer_single_within, streamed)
    report.measured_in_s = time.perf_counter() - t0
    if use_cache:
        write_cache(cache_path(), key, report)
    return report


def place_by_option(network, spec: str, batch_size: int, *, dry_run: bool = False,
                    streamed: bool = False, echo=print) -> tuple[list[str], PlanReport | None]:
    """Place ``network`` as the CLI's ``--backend`` option says: (plan, auto report or None).

    ``auto`` measures (or reads the cached plan, see :func:`auto_plan` for
    ``streamed``) and prints its table through ``echo``; anything else is a
    placement spec. With ``dry_run`` the plan is printed and the network left
    unplaced.
    """
    report = None
    if (spec or "").strip() == AUTO:
        report = auto_plan(network, batch_size, streamed=streamed, echo=echo)
        echo(report.format())
        plan = list(report.plan)
    else:
        reg = getattr(network, "_registry", None) or default_registry()
        plan = resolve_placement(spec, network.layers, reg.names())
    if dry_run:
        echo(format_plan(network.layers, plan))
        return plan, report
    return network.place(plan), report
