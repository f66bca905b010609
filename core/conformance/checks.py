"""The primitives every conformance case is built from.

Calling an op through :func:`call` also proves it left its inputs alone;
:func:`output` proves an output has the promised shape, dtype and C order
before bringing it to the host; :func:`compare` measures the error against
the float64 reference, :func:`compare_step` the step of an in-place update;
:func:`gradcheck` compares a backward op with central finite differences of
the backend's own forward op.

How an error is measured, and why
---------------------------------
Every floating output array is judged on its own scale::

    error = max_i |got_i - ref_i| / max_i |ref_i|

(over the finite reference values). An output whose values are all near 1e-3
is held to the same relative accuracy as one near 1e3; the earlier measure,
``max |got - ref| / max(1, max |ref|)``, was an absolute error below 1 and let
a float32 step 0.2% too large pass. Where the reference is exactly zero
everywhere a relative error means nothing, and the error is absolute (every
case's inputs are of order one). NaN and infinities must sit where the
reference has them.

In-place updates add a tiny step to a large parameter, so their result is
mostly the old value: :func:`compare_step` judges ``new - old`` against the
reference's step by the same measure, after allowing :data:`STEP_ULPS` units
in the last place of the parameter for its own rounding (the sum
``old + step`` is rounded to the dtype, once or twice).

:data:`TOLERANCE` comes from what correct backends reach. Over the whole suite
the NumPy and example backends' largest errors are 1.2e-6 (float32: a dense
forward summing 3000 terms) and 1.7e-15 (float64). A GPU may sum in another
order (cuBLAS's blocking, split-K partial sums; TF32 is never on at fp32); even the
least accurate order, one term after another, reaches 4e-6 on the suite's
longest float32 reduction (16769 terms, a dense input gradient). The
tolerances sit five times above that (float32) and far above float64's
rounding, and far below the errors of real bugs (a float32 constant in
float64 code, a step 0.2% off, a dropped term: 1e-8, 1e-3 and up). Without
the ulp allowance a correct float32 Adam step is off by up to 3e-4 of its own
scale (the parameter's rounding); with two ulps, by 3e-8.

Products at tf32 or bf16 are compared with the reference on the operands rounded the
same way, so only the float32 sums differ; their tolerance,
:data:`genrecnn.engine.ops.TOLERANCE_PRECISION`, is stated in the contract.
"""
from __future__ import annotations

import inspect

import numpy as np

from genrecnn.engine.ops import DEFAULT_PRECISION, TOLERANCE_PRECISION, Backend

# by dtype, and for float32 products at tf32 / bf16 by precision (see tolerance_key)
TOLERANCE = {"float32": 2e-5, "float64": 1e-12, "int32": 0.0, **TOLERANCE_PRECISION}
STEP_ULPS = 2           # rounding allowance of an in-place update, in ulps of the parameter
FD_STEP = 1e-6          # central-difference step (float64 only)
FD_TOLERANCE = 1e-6     # accepted |numeric - analytic| / max(1, |analytic|)
FD_COORDS = 10          # coordinates checked per input, plus one random direction


def tolerance_key(dtype: str, precision: str) -> str:
    """The :data:`TOLERANCE` entry of outputs in ``dtype`` of products at ``precision``."""
    return dtype if precision == DEFAULT_PRECISION else precision


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


def c_contiguous(arr) -> bool:
    """Whether a device array is C-contiguous, from its ``flags`` or its (CUDA) array
    interface; an array that shows neither cannot be checked and passes."""
    flags = getattr(arr, "flags", None)
    if flags is not None and hasattr(flags, "c_contiguous"):
        return bool(flags.c_contiguous)
    for attr in ("__cuda_array_interface__", "__array_interface__"):
        iface = getattr(arr, attr, None)
        if isinstance(iface, dict):
            return _c_strides(tuple(iface["shape"]), iface.get("strides"),
                              np.dtype(iface["typestr"]).itemsize)
    return True


def _c_strides(shape: tuple, strides, itemsize: int) -> bool:
    """Are ``strides`` (bytes; None means C order) those of a C-contiguous array?
    Axes of extent 1 may have any stride, as in NumPy."""
    if strides is None or 0 in shape:
        return True
    want = itemsize
    for extent, stride in zip(reversed(shape), reversed(strides)):
        if extent > 1 and stride != want:
            return False
        want *= extent
    return True


def output(be, arr, what: str, shape: tuple, dtype: str) -> np.ndarray:
    """Check a device output's shape, dtype and C order, then return it as a host array."""
    if not _is_device_array(arr):
        raise CheckFailed(f"{what} is {type(arr).__name__}, expected an array")
    if str(arr.dtype) != dtype:
        raise CheckFailed(f"{what} has dtype {arr.dtype}, expected {dtype} (no silent casting)")
    if tuple(arr.shape) != tuple(shape):
        raise CheckFailed(f"{what} has shape {tuple(arr.shape)}, expected {tuple(shape)}")
    if not c_contiguous(arr):
        raise CheckFailed(f"{what} is not C-contiguous (the contract asks it of every array "
                          f"a backend returns; the next op may rely on it)")
    host = be.to_host(arr)
    if not isinstance(host, np.ndarray):
        raise CheckFailed(f"to_host({what}) returned {type(host).__name__}, not a numpy array")
    if str(host.dtype) != dtype or host.shape != tuple(shape):
        raise CheckFailed(f"to_host({what}) gave {host.dtype}{host.shape}, expected "
                          f"{dtype}{tuple(shape)}")
    return host


def relative_error(got, ref, slack=0.0) -> tuple[float, tuple]:
    """(max |got - ref| / max |ref|, index of the worst element); see the module notes.

    ``slack`` (a number or an array like ``ref``) is forgiven element by element
    before the maximum is taken. Non-finite references must be matched exactly.
    """
    got = np.atleast_1d(np.asarray(got, dtype=np.float64))
    ref = np.atleast_1d(np.asarray(ref, dtype=np.float64))
    if got.size == 0:
        return 0.0, ()
    with np.errstate(invalid="ignore"):
        diff = np.abs(got - ref)                        # NaN where got or ref is NaN
    diff -= slack
    finite = np.isfinite(ref)
    if finite.all():
        scale = max(float(ref.max()), -float(ref.min()))
    else:                                               # NaN / inf must be matched exactly
        same = (got == ref) | (np.isnan(got) & np.isnan(ref))
        diff[~finite] = np.where(same[~finite], 0.0, np.inf)
        scale = float(np.abs(ref[finite]).max()) if finite.any() else 0.0
    if np.isnan(diff.max()):
        diff[np.isnan(diff)] = np.inf                   # a NaN where the reference has a number
    worst = int(np.argmax(diff))
    return max(float(diff.flat[worst]), 0.0) / (scale or 1.0), np.unravel_index(worst, got.shape)


def _judge(what: str, got, ref, dtype: str, slack=0.0, noun: str = "") -> float:
    got_a, ref_a = np.asarray(got), np.asarray(ref)
    if got_a.shape != ref_a.shape:
        raise CheckFailed(f"{what} has shape {got_a.shape}, expected {ref_a.shape}")
    got_1, ref_1 = np.atleast_1d(got_a), np.atleast_1d(ref_a)
    err, idx = relative_error(got_1, ref_1, slack)
    if not err <= TOLERANCE[dtype]:
        where = f"[{', '.join(str(int(i)) for i in idx)}]" if got_a.ndim else ""
        raise CheckFailed(f"{what}{where}{noun} = {float(got_1[idx]):.9g} but the reference "
                          f"gives {float(ref_1[idx]):.9g} (relative error {err:.3g} > "
                          f"{TOLERANCE[dtype]:g})", err)
    return err


def compare(what: str, got, ref, dtype: str) -> float:
    """Fail if ``got`` is further from ``ref`` than the tolerance of ``dtype`` (a key of
    :data:`TOLERANCE`: a dtype, or a precision); return the error."""
    return _judge(what, got, ref, dtype)


def compare_step(what: str, new, old, ref_new, dtype: str) -> float:
    """Judge an in-place update by its step ``new - old`` against the reference step,
    forgiving :data:`STEP_ULPS` ulps of the parameter (its own rounding)."""
    old64 = np.asarray(old, dtype=np.float64)
    ref64 = np.asarray(ref_new, dtype=np.float64)
    big = np.maximum(np.abs(old64), np.abs(ref64)).astype(dtype)
    slack = STEP_ULPS * np.spacing(big).astype(np.float64)
    return _judge(what, np.asarray(new, dtype=np.float64) - old64, ref64 - old64, dtype, slack,
                  " step")


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
