"""The primitives every conformance case is built from.

Calling an op through :func:`call` also proves it left its inputs alone;
:func:`output` proves an output has the promised shape and dtype before
bringing it to the host; :func:`compare` measures the error against the
float64 reference; :func:`gradcheck` compares a backward op with central
finite differences of the backend's own forward op.
"""
from __future__ import annotations

import inspect

import numpy as np

from genrecnn.engine.ops import Backend

# Largest accepted "scaled error": max |got - ref| / max(1, max |ref|), i.e. an
# absolute error for values up to 1 and a relative one for larger values.
TOLERANCE = {"float32": 1e-4, "float64": 1e-10, "int32": 0.0}
FD_STEP = 1e-6          # central-difference step (float64 only)
FD_TOLERANCE = 1e-6     # accepted |numeric - analytic| / max(1, |analytic|)
FD_COORDS = 10          # coordinates checked per input, plus one random direction


class CheckFailed(AssertionError):
    """A case found the backend wrong; the message says where and by how much."""

    def __init__(self, message: str, error: float | None = None):
        super().__init__(message)
        self.error = error


def _arg_names(method: str) -> list[str]:
    params = list(inspect.signature(getattr(Backend, method)).parameters)
    return params[1:]


def _is_device_array(a) -> bool:
    return hasattr(a, "shape") and hasattr(a, "dtype") and not isinstance(a, (str, bytes))


def device(be, a: np.ndarray):
    """A host array on the backend (contiguous, as layers would send it)."""
    return be.from_host(np.ascontiguousarray(a))


def call(be, method: str, *args, **kwargs):
    """Run ``be.method(*args)`` and fail if it changed any array argument."""
    names = _arg_names(method)
    before = [(i, be.to_host(a).copy()) for i, a in enumerate(args) if _is_device_array(a)]
    out = getattr(be, method)(*args, **kwargs)
    for i, host in before:
        after = be.to_host(args[i])
        if not (after.shape == host.shape and np.array_equal(after, host, equal_nan=True)):
            name = names[i] if i < len(names) else f"#{i + 1}"
            raise CheckFailed(f"{method} modified its input {name!r} (ops must not change inputs)")
    return out


def unpack(out, n: int, method: str) -> tuple:
    if not isinstance(out, (tuple, list)) or len(out) != n:
        raise CheckFailed(f"{method} returned {type(out).__name__}, expected a tuple of {n} arrays")
    return tuple(out)


def output(be, arr, what: str, shape: tuple, dtype: str) -> np.ndarray:
    """Check a device output's shape and dtype, then return it as a host array."""
    if not _is_device_array(arr):
        raise CheckFailed(f"{what} is {type(arr).__name__}, expected an array")
    if str(arr.dtype) != dtype:
        raise CheckFailed(f"{what} has dtype {arr.dtype}, expected {dtype} (no silent casting)")
    if tuple(arr.shape) != tuple(shape):
        raise CheckFailed(f"{what} has shape {tuple(arr.shape)}, expected {tuple(shape)}")
    host = be.to_host(arr)
    if not isinstance(host, np.ndarray):
        raise CheckFailed(f"to_host({what}) returned {type(host).__name__}, not a numpy array")
    if str(host.dtype) != dtype or host.shape != tuple(shape):
        raise CheckFailed(f"to_host({what}) gave {host.dtype}{host.shape}, expected "
                          f"{dtype}{tuple(shape)}")
    return host


def scaled_error(got, ref) -> tuple[float, tuple]:
    """(max |got - ref| / max(1, max |ref|), index of the worst element)."""
    got = np.atleast_1d(np.asarray(got, dtype=np.float64))
    ref = np.atleast_1d(np.asarray(ref, dtype=np.float64))
    if got.size == 0:
        return 0.0, ()
    diff = np.abs(got - ref)
    diff[~np.isfinite(got)] = np.inf
    diff[np.isnan(got)] = np.inf
    worst = int(np.argmax(diff))
    err = float(diff.flat[worst]) / max(1.0, float(np.abs(ref).max()))
    return err, np.unravel_index(worst, got.shape)


def compare(what: str, got, ref, dtype: str) -> float:
    """Fail if ``got`` is further from ``ref`` than the dtype's tolerance; return the error."""
    got_a, ref_a = np.asarray(got), np.asarray(ref)
    if got_a.shape != ref_a.shape:
        raise CheckFailed(f"{what} has shape {got_a.shape}, expected {ref_a.shape}")
    got_a, ref_a = np.atleast_1d(got_a), np.atleast_1d(ref_a)
    err, idx = scaled_error(got_a, ref_a)
    if err > TOLERANCE[dtype]:
        where = f"[{', '.join(str(int(i)) for i in idx)}]" if np.ndim(got) else ""
        raise CheckFailed(f"{what}{where} = {got_a[idx]!r} but the reference gives "
                          f"{ref_a[idx]!r} (scaled error {err:.3g} > {TOLERANCE[dtype]:g})", err)
    return err


def compare_exact(what: str, got, ref) -> float:
    """Integer outputs (argmax) must match exactly."""
    got_a, ref_a = np.asarray(got), np.asarray(ref)
    if got_a.shape != ref_a.shape:
        raise CheckFailed(f"{what} has shape {got_a.shape}, expected {ref_a.shape}")
    if not np.array_equal(got_a, ref_a):
        idx = tuple(int(i) for i in np.argwhere(got_a != ref_a)[0])
        raise CheckFailed(f"{what}{list(idx)} = {got_a[idx]} but the reference gives "
                          f"{ref_a[idx]} (the first maximum)", float("inf"))
    return 0.0


def gradcheck(f, inputs: dict[str, np.ndarray], grads: dict[str, np.ndarray],
              rng: np.random.Generator) -> float:
    """Compare analytic ``grads`` of the scalar ``f(**inputs)`` with central differences.

    Checks FD_COORDS random coordinates of every input and one random
    direction (which sees every element at once). Inputs are float64.
    """
    worst = 0.0
    h = FD_STEP

    def at(name, delta):
        moved = dict(inputs)
        moved[name] = inputs[name] + delta
        return f(**moved)

    for name, arr in inputs.items():
        g = np.asarray(grads[name], dtype=np.float64)
        if g.shape != arr.shape:
            raise CheckFailed(f"gradient for {name!r} has shape {g.shape}, expected {arr.shape}")
        coords = rng.choice(arr.size, size=min(FD_COORDS, arr.size), replace=False)
        for i in coords:
            e = np.zeros(arr.shape)
            e.flat[i] = h
            num = (at(name, e) - at(name, -e)) / (2 * h)
            ana = float(g.flat[i])
            err = abs(num - ana) / max(1.0, abs(ana))
            worst = max(worst, err)
            if not err <= FD_TOLERANCE:
                idx = list(int(j) for j in np.unravel_index(i, arr.shape))
                raise CheckFailed(f"d loss / d {name}{idx}: backward gives {ana:.8g}, finite "
                                  f"differences {num:.8g} (error {err:.3g} > {FD_TOLERANCE:g})",
                                  err)
        v = rng.standard_normal(arr.shape)
        num = (at(name, h * v) - at(name, -h * v)) / (2 * h)
        ana = float((g * v).sum())
        err = abs(num - ana) / max(1.0, abs(ana))
        worst = max(worst, err)
        if not err <= FD_TOLERANCE:
            raise CheckFailed(f"directional derivative along a random direction of {name!r}: "
                              f"backward gives {ana:.8g}, finite differences {num:.8g} "
                              f"(error {err:.3g} > {FD_TOLERANCE:g})", err)
    return worst
