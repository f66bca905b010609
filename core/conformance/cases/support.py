"""Pieces the 2-D map and training-op cases share: inputs and reference results
computed once per process, and the check of an op that works in place."""
from __future__ import annotations

import functools
import zlib

import numpy as np

from genrecnn.conformance.checks import CheckFailed, compare, output


def seeded(make):
    """Cache ``make(rng, cfg, dtype, *more) -> dict of arrays`` per (cfg, dtype, *more)
    (``more``: e.g. a precision).

    The generator is seeded by the function's name, the config, the dtype and
    ``more``, so a failure reproduces exactly; the float64 reference behind the
    arrays runs once per process however often the suite runs (the planted-bug tests
    run it many times). The arrays are read-only: no backend can change them.
    """
    @functools.lru_cache(maxsize=None)
    def cached(cfg, dtype, *more):
        ident = f"{make.__module__}.{make.__qualname__}{cfg!r}{dtype}{''.join(map(str, more))}"
        data = make(np.random.default_rng(zlib.crc32(ident.encode())), cfg, dtype, *more)
        for a in data.values():
            if isinstance(a, np.ndarray):
                a.flags.writeable = False
        return data
    return cached


def compare_outputs(be, method: str, got: dict, want: dict, dtype: str) -> float:
    """Each output ``got[name]`` checked for the shape of ``want[name]``, the dtype and C
    order, then against it; returns the largest error."""
    return max(compare(f"{method} {k}", output(be, a, f"{method} {k}", want[k].shape, dtype),
                       want[k], dtype) for k, a in got.items())


def call_in_place(be, method: str, args: dict, changed: dict[str, np.ndarray], dtype: str,
                  returns_none: bool = True, host: tuple[str, ...] = (),
                  keywords: dict | None = None):
    """Run ``be.method(*args.values(), **keywords)`` for an op that changes arguments in
    place.

    Every array named in ``changed`` must now hold the given value (compared
    at its tolerance, and changed at all where the value differs); every
    other array argument must be unchanged (``host`` names the ones that are
    host arrays). Returns (the op's result, the largest error).
    """
    def now(name):
        a = args[name]
        return np.array(a, copy=True) if name in host else be.to_host(a).copy()
    arrays = [k for k, v in args.items() if hasattr(v, "shape") and hasattr(v, "dtype")]
    before = {k: now(k) for k in arrays}
    out = getattr(be, method)(*args.values(), **(keywords or {}))
    if returns_none and out is not None:
        raise CheckFailed(f"{method} returned {type(out).__name__}; it must change its "
                          f"arguments in place and return None")
    err = 0.0
    for name in arrays:
        if name not in changed:
            if not np.array_equal(now(name), before[name], equal_nan=True):
                raise CheckFailed(f"{method} modified {name!r} (it may change only "
                                  f"{', '.join(repr(k) for k in changed)})", float("inf"))
            continue
        want, kind = changed[name], str(before[name].dtype)
        got = output(be, args[name], f"{method} {name} (in place)", want.shape, kind)
        if np.array_equal(got, before[name]) and not np.array_equal(want, before[name]):
            raise CheckFailed(f"{method} did not change {name!r} in place (it is unchanged)",
                              float("inf"))
        err = max(err, compare(f"{method} {name} (in place)", got, want,
                               kind if kind == "int32" else dtype))
    return out, err
