"""Learning-rate schedules: the rate of every optimiser step, as a function of how far
the run has come.

``linear`` is the dissertation's decay eps_k = (1 - (k - 1) / N) eps_0 for epoch k
of N (constant within an epoch); ``cosine`` anneals from the peak to 0;
``onecycle`` (Smith and Topin) warms up from peak / 25 over the first 30% of the
steps and anneals to peak / 25e4, both along cosines. Steps count from 0.
"""
from __future__ import annotations

import math

from genrecnn.errors import GenrecnnError

SCHEDULES = ("constant", "linear", "cosine", "onecycle")
ONECYCLE_WARMUP = 0.3
ONECYCLE_START, ONECYCLE_END = 25.0, 25.0e4


def _cos_between(a: float, b: float, frac: float) -> float:
    """From a (frac 0) to b (frac 1) along half a cosine."""
    return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * min(max(frac, 0.0), 1.0)))


def learning_rate(schedule: str, peak: float, step: int, total_steps: int,
                  steps_per_epoch: int) -> float:
    """The rate of optimiser step ``step`` of ``total_steps`` under ``schedule``."""
    if schedule == "constant":
        return peak
    if schedule == "linear":
        epochs = max(1, -(-total_steps // max(1, steps_per_epoch)))
        epoch = step // max(1, steps_per_epoch)              # k - 1
        return peak * max(0.0, 1.0 - epoch / epochs)
    if schedule == "cosine":
        return _cos_between(peak, 0.0, step / max(1, total_steps))
    if schedule == "onecycle":
        warm = max(1, int(ONECYCLE_WARMUP * total_steps))
        if step < warm:
            return _cos_between(peak / ONECYCLE_START, peak, step / warm)
        return _cos_between(peak, peak / ONECYCLE_END,
                            (step - warm) / max(1, total_steps - warm))
    raise GenrecnnError(f"unknown learning-rate schedule {schedule!r}; use one of "
                        f"{', '.join(SCHEDULES)}")
