"""The proof that auto placement pays: whole training steps under a freshly measured
auto plan against every single backend that runs the whole network."""
from __future__ import annotations

from genrecnn.engine import bench
from genrecnn.engine.autoplace import auto_plan
from genrecnn.engine.autoplace.measure import candidates
from genrecnn.engine.autoplace.timing import time_plans
from genrecnn.engine.registry import registry as default_registry


def compare_with_single(make_network, batch_size: int, *, registry=None,
                        backends: list[str] | None = None, optimizer: str = "adam",
                        reps: int = 5, warmup: int = 2, seed: int = 0, streamed: bool = False,
                        echo=print) -> dict:
    """Time whole training steps (loss, gradients, optimiser step) under a freshly
    measured auto plan and under each single backend that runs every layer.

    ``make_network()`` builds the same network each call. Placements are timed
    in interleaved rounds, so drifting machine load hits them all alike. ``streamed``:
    as for a training set over the resident budget (see :func:`auto_plan`).
    Returns {"rows": [...], "auto": plan, "best_single": name, "ratio": auto/best}.
    """
    reg = registry or default_registry()
    names = [n for n in (backends or reg.available_names()) if n in reg.available_names()]
    sub = RegistryView(reg, names)
    probe = make_network()
    report = auto_plan(probe, batch_size, echo=echo, registry=sub, optimizer=optimizer,
                       refresh=True, streamed=streamed)
    echo(report.format())
    plan = report.plan
    cands = candidates(probe, sub, optimizer)
    placements = {"auto": plan}
    same = None                    # the single placement auto chose, timed once as auto
    for n in names:
        if plan == [n] * len(plan):
            same = f"{n} only"
        elif all(n in c for c in cands):
            placements[f"{n} only"] = [n] * len(plan)
    samples = time_plans(make_network, placements, reg, batch_size, optimizer, reps=reps,
                         warmup=warmup, seed=seed, streamed=streamed)

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
    _print_rows(rows, same, echo)
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


def _print_rows(rows: list[dict], same: str | None, echo) -> None:
    """The timing table, each placement against auto (the first row)."""
    auto = rows[0]
    echo(f"  {'placement':<16}{'median ms':>11}{'p25..p75 ms':>20}{'vs auto':>9}")
    for r in rows:
        echo(f"  {r['placement']:<16}{r['median_s'] * 1e3:>11.1f}"
             f"{r['p25_s'] * 1e3:>11.1f}..{r['p75_s'] * 1e3:<8.1f}"
             f"{r['median_s'] / auto['median_s']:>8.2f}x")
    if same:
        echo(f"  (auto chose {same}: the same placement, timed once)")


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
