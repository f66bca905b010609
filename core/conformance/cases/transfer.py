"""Transfers: exact round trips (extremes, non-contiguous host arrays, later host
changes not showing through) and zero-filled allocation."""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance.checks import (CheckFailed, output)
from genrecnn.conformance.cases.common import (INDEX, Case, normal)


def _special(dtype):
    if dtype == INDEX:
        info = np.iinfo(np.int32)
        return np.array([[0, 1, -1, info.min], [info.max, 7, -7, 42]], dtype=np.int32)
    info = np.finfo(dtype)
    return np.array([[0.0, -0.0, info.tiny, -info.tiny],
                     [info.max, -info.max, info.eps, 1.0 / 3.0]], dtype=dtype)


def _host_data(rng, shape, dtype):
    if dtype == INDEX:
        return rng.integers(-1000, 1000, size=shape).astype(np.int32)
    return normal(rng, shape, dtype, 10.0)


def _roundtrip(be, dtype, rng, shape, how):
    if how == "special":
        a = _special(dtype)
    elif how == "noncontiguous":
        a = _host_data(rng, shape, dtype).T           # a transposed (Fortran-order) view
    else:
        a = _host_data(rng, shape, dtype)
    keep = a.copy()
    d = be.from_host(a)
    if a.size:
        a[...] = a.flat[0] if how != "special" else 5   # the device copy must not see this
    h = output(be, d, "from_host result", keep.shape, dtype)
    if not (np.array_equal(h, keep) and np.array_equal(np.signbit(h), np.signbit(keep))):
        idx = tuple(int(i) for i in np.argwhere((h != keep) | (np.signbit(h) != np.signbit(keep)))[0])
        raise CheckFailed(f"to_host(from_host(a)){list(idx)} = {h[idx]!r}, expected {keep[idx]!r} "
                          f"(round trip must be exact, and later host changes must not show)",
                          float("inf"))
    return 0.0


def _zeros(be, dtype, rng, shape):
    h = output(be, be.zeros(shape, dtype), f"zeros({shape}, {dtype!r})", shape, dtype)
    if np.any(h != 0):
        raise CheckFailed(f"zeros({shape}, {dtype!r}) holds non-zero values", float("inf"))
    return 0.0


def transfer_cases(dtype):
    shapes = {"1": (1,), "3x4": (3, 4), "2x3x5": (2, 3, 5), "0x4": (0, 4)}
    out = [Case("transfer", dtype, "roundtrip", k, functools.partial(_roundtrip, shape=s, how="random"))
           for k, s in shapes.items()]
    out.append(Case("transfer", dtype, "roundtrip", "noncontiguous",
                    functools.partial(_roundtrip, shape=(4, 6), how="noncontiguous")))
    out.append(Case("transfer", dtype, "roundtrip", "extremes",
                    functools.partial(_roundtrip, shape=None, how="special")))
    out += [Case("transfer", dtype, "zeros", k, functools.partial(_zeros, shape=s))
            for k, s in shapes.items() if k != "0x4"]
    return out
