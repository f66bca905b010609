"""Transfers: exact round trips (extremes, non-contiguous host arrays, later host
changes not showing through), zero-filled allocation, and the C-contiguous results
of ``adopt`` (a transposed view from another backend) and ``reshape``."""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance.checks import CheckFailed, output
from genrecnn.conformance.cases.common import INDEX, Case, normal
from genrecnn.engine.ops import Backend


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


def _exact(what: str, got: np.ndarray, want: np.ndarray, why: str = "must be exact") -> float:
    """Transfers move bits: values and signs of zero must survive unchanged."""
    bad = (got != want) | (np.signbit(got) != np.signbit(want))
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise CheckFailed(f"{what}{list(idx)} = {got[idx].item()!r}, expected "
                          f"{want[idx].item()!r} ({why})", float("inf"))
    return 0.0


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
    return _exact("to_host(from_host(a))", h, keep,
                  "a round trip must be exact, and later host changes must not show")


def _zeros(be, dtype, rng, shape):
    h = output(be, be.zeros(shape, dtype), f"zeros({shape}, {dtype!r})", shape, dtype)
    if np.any(h != 0):
        raise CheckFailed(f"zeros({shape}, {dtype!r}) holds non-zero values", float("inf"))
    return 0.0


class _View:
    """A foreign CUDA array: another producer's strided view of device memory."""

    def __init__(self, interface: dict, owner):
        self.__cuda_array_interface__ = interface
        self._owner = owner                            # keeps the memory alive


class _Foreign(Backend):
    """The backend an adopted array comes from; through the host it hands over ``values``."""

    name = "foreign"

    def __init__(self, device: str, values: np.ndarray):
        self.device, self._values = device, values

    def to_host(self, x):
        return np.ascontiguousarray(self._values)


def _transposed_view(be, d, h):
    """(x, source): ``h.T`` as another backend would hold it, not contiguous. On a CUDA
    backend a view of ``d``'s own memory through ``__cuda_array_interface__``; else a
    transposed NumPy view."""
    cai = getattr(d, "__cuda_array_interface__", None)
    if cai is None:
        view = h.copy().T
        return view, _Foreign("cpu", view)
    rows, cols = h.shape
    item = h.dtype.itemsize
    iface = dict(cai, shape=(cols, rows), strides=(item, item * cols))
    return _View(iface, d), _Foreign("cuda", h.T)


def _adopt(be, dtype, rng, foreign):
    h = _host_data(rng, (4, 6), dtype)
    d = be.from_host(h)
    if foreign:
        x, source, want = *_transposed_view(be, d, h), h.T
    else:
        x, source, want = d, be, h
    got = output(be, be.adopt(x, source), "adopt result", want.shape, dtype)
    return _exact("adopt result", got, want)


def _reshape(be, dtype, rng, shape):
    h = _host_data(rng, (4, 6), dtype)
    got = output(be, be.reshape(be.from_host(h), shape), f"reshape to {shape}", shape, dtype)
    return _exact(f"reshape to {shape}", got, h.reshape(shape))


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
    out += [Case("transfer", dtype, "adopt", "own", functools.partial(_adopt, foreign=False)),
            Case("transfer", dtype, "adopt", "transposed-foreign",
                 functools.partial(_adopt, foreign=True))]
    out += [Case("transfer", dtype, "reshape", "x".join(map(str, s)),
                 functools.partial(_reshape, shape=s)) for s in ((3, 8), (2, 3, 4), (24,))]
    return out
