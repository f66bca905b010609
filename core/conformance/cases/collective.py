"""collective: sum_across in a world of one scales every array by its weight, in place,
over arrays of mixed shapes fused into one buffer (the cross-rank sum itself is tested
under mpirun by genrecnn's own tests)."""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance.checks import CheckFailed, compare, device, output
from genrecnn.conformance.cases.common import Case, normal
from genrecnn.world import World

SHAPES = {"one": [(5,)], "mixed": [(3,), (7, 5), (70, 1100), (1,), (2, 3, 4, 5)]}


def _sum_across(be, dtype, rng, shapes, weight):
    host = [normal(rng, s, dtype) for s in shapes]
    dev = [device(be, h) for h in host]
    ret = be.sum_across(dev, weight, World())
    if ret is not None:
        raise CheckFailed(f"sum_across returned {type(ret).__name__}; it must work in place")
    err = 0.0
    for i, (h, d) in enumerate(zip(host, dev)):
        got = output(be, d, f"sum_across #{i}", h.shape, dtype)
        err = max(err, compare(f"sum_across #{i} of {len(shapes)} (weight {weight})", got,
                               h.astype(np.float64) * weight, dtype))
    return err


def collective_cases(dtype):
    return [Case("collective", dtype, "inplace", f"sum_across-{label}-w{weight}",
                 functools.partial(_sum_across, shapes=shapes, weight=weight))
            for label, shapes in SHAPES.items() for weight in (1.0, 0.375)]
