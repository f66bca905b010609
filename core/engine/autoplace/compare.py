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
    placements, same = _placements(report.plan, names, candidates(probe, sub, optimizer))
    samples = time_plans(make_network, placements, reg, batch_size, optimizer, reps=reps,
                         warmup=warmup, seed=seed, streamed=streamed)
    rows = [{"placement": label, "plan": ",".join(placements[label]),
             "batch_size": batch_size, **bench.Timing(ts).as_dict()}
            for label, ts in samples.items()]
    echo(f"training step ({optimizer}), batch {batch_size}, median of {reps} interleaved "
         f"rounds after {warmup} warm-up steps:")
    _echo_table(rows, same, echo)
    return {"rows": rows, "auto": report.plan, "same_as": same, **_verdict(rows, echo)}


def _placements(plan: list[str], names: list[str], cands) -> tuple[dict, str | None]:
    """{label: plan} for auto and each single backend that runs every layer, and the
    label of the single placement auto chose (timed once, as auto), if it chose one."""
    placements = {"auto": plan}
    same = None
    for n in names:
        if plan == [n] * len(plan):
            same = f"{n} only"
        elif all(n in c for c in cands):
            placements[f"{n} only"] = [n] * len(plan)
    return placements, same


def _echo_table(rows: list[dict], same: str | None, echo) -> None:
    auto = rows[0]
    echo(f"  {'placement':<16}{'median ms':>11}{'p25..p75 ms':>20}{'vs auto':>9}")
    for r in rows:
        echo(f"  {r['placement']:<16}{r['median_s'] * 1e3:>11.1f}"
             f"{r['p25_s'] * 1e3:>11.1f}..{r['p75_s'] * 1e3:<8.1f}"
             f"{r['median_s'] / auto['median_s']:>8.2f}x")
    if same:
        echo(f"  (auto chose {same}: the same placement, timed once)")


def _verdict(rows: list[dict], echo) -> dict:
    """Auto (the first row) against the fastest single placement, within the timings'
    own spread (at least 5%): "ok" when auto is not slower, else "slower"."""
    auto, singles = rows[0], rows[1:]
    if not singles:
        return {"best_single": None, "ratio": None, "verdict": "ok"}
    best = min(singles, key=lambda r: r["median_s"])
    ratio = auto["median_s"] / best["median_s"]
    noise = max((best["p75_s"] - best["p25_s"]) / best["median_s"],
                (auto["p75_s"] - auto["p25_s"]) / auto["median_s"], 0.05)
    ok = ratio <= 1 + noise
    echo(f"auto / best single ({best['placement']}): {ratio:.3f} "
         f"(noise allowance {noise:.1%}): "
         + ("auto is not slower" if ok else "AUTO IS SLOWER than the best single placement"))
    return {"best_single": best["placement"], "ratio": ratio,
            "verdict": "ok" if ok else "slower"}


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
