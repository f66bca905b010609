"""The ``precision`` of the contract's products: fp32, or tensor-core TF32 and bf16 operands.

The products -- :meth:`conv1d`, :meth:`conv2d`, :meth:`dense`, their ``*_backward`` and
``*_backward_params`` ops (:data:`PRECISION_METHODS`) -- take a keyword argument
``precision: str = "fp32"``, one of :data:`PRECISIONS`. With float32 arrays and
precision p, the result is what float32 arithmetic gives after every element of the
operands ``x``, ``w`` and ``dy`` is first rounded to p (:func:`round_operand`): tf32
keeps 10 mantissa bits, bf16 keeps 7, round to nearest with ties to even; NaN stays
(quiet) NaN, +-inf stay, and a finite value that rounds past the largest finite one
becomes inf, as IEEE rounding makes it. The bias and every sum stay float32 (tensor
cores multiply rounded operands and accumulate in float32); the bias gradient ``db``,
a sum of ``dy`` with no product in it, sums ``dy`` as given. "fp32" means no rounding,
the arrays' own precision, and is the only precision of float64 arrays.

A backend declares the precisions it offers in ``Backend.precisions`` (default
``("fp32",)``). Callers pass ``precision=`` only when it is not "fp32"
(:func:`precision_kwargs`), so a backend that never heard of precisions needs no
such argument in its signatures; one that declares more must take it in every
method of :data:`PRECISION_METHODS`.

The conformance suite checks each declared precision other than fp32 in float32
against the float64 reference computed on the rounded operands, to within
:data:`TOLERANCE_PRECISION` of each output's scale.
"""
from __future__ import annotations

import numpy as np

from genrecnn.errors import ShapeError

PRECISIONS = ("fp32", "tf32", "bf16")
DEFAULT_PRECISION = "fp32"
# mantissa bits an operand keeps (float32 keeps 23)
MANTISSA_BITS = {"fp32": 23, "tf32": 10, "bf16": 7}
# the op groups whose products take ``precision``, and their methods
PRECISION_GROUPS = ("conv1d", "conv2d", "dense")
PRECISION_METHODS = ("conv1d", "conv1d_backward", "conv1d_backward_params",
                     "conv2d", "conv2d_backward", "conv2d_backward_params",
                     "dense", "dense_backward")
# Accepted error of a tf32 / bf16 product against the float64 reference on the rounded
# operands, relative to each output's scale (see genrecnn.conformance.checks). Rounding
# is outside this error: the reference rounds the same way, so only the float32
# summation is left, which is what fp32's tolerance (2e-5) bounds, and so it is the same.
# Measured over the suite: on an H100's tensor cores (mma.cu) at most 1.7e-6 (tf32) and
# 9.0e-7 (bf16); NumPy 6.9e-7 and 3.6e-7. An operand not rounded at all is off by about
# 4e-4 (tf32) or 3e-3 (bf16), one truncated instead of rounded by 1e-3 and up.
TOLERANCE_PRECISION = {"tf32": 2e-5, "bf16": 2e-5}

_SIGN_OFF = np.uint32(0x7FFFFFFF)
_INF_BITS = np.uint32(0x7F800000)


def check_precision(precision: str, dtype: str = "float32") -> str:
    """``precision`` if it is one of :data:`PRECISIONS` usable with ``dtype``, else a
    ShapeError saying what to use."""
    if precision not in PRECISIONS:
        raise ShapeError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision != DEFAULT_PRECISION and dtype != "float32":
        raise ShapeError(f"precision {precision!r} rounds float32 operands, not {dtype}; use "
                         f"--precision {DEFAULT_PRECISION}, or float32")
    return precision


def precision_kwargs(precision: str) -> dict:
    """The keyword arguments a product op is called with: none for fp32, so backends
    without precisions keep working."""
    return {} if precision == DEFAULT_PRECISION else {"precision": precision}


def round_operand(a: np.ndarray, precision: str) -> np.ndarray:
    """``a`` (float32) with every element rounded to ``precision``'s mantissa, as the
    CUDA kernels round on the bit pattern ``u``:

    tf32: ``u = (u + 0x0FFF + ((u >> 13) & 1)) & 0xFFFFE000``
    bf16: ``u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000``

    (round to nearest, ties to even; a carry into the exponent is the correct next
    binade, and past the largest finite value it gives inf), except that NaN
    (``(u & 0x7FFFFFFF) > 0x7F800000``) is kept as it is. "fp32" returns ``a``
    itself, of any dtype.
    """
    if precision == DEFAULT_PRECISION:
        return a
    if precision not in PRECISIONS:
        raise ShapeError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    a = np.ascontiguousarray(a)
    if a.dtype != np.float32:
        raise ShapeError(f"precision {precision!r} rounds float32 operands, got {a.dtype}")
    drop = 23 - MANTISSA_BITS[precision]               # 13 or 16 low bits cleared
    u = a.view(np.uint32)
    half = np.uint32((1 << (drop - 1)) - 1)
    odd = (u >> np.uint32(drop)) & np.uint32(1)
    r = (u + half + odd) & np.uint32((0xFFFFFFFF << drop) & 0xFFFFFFFF)
    r = np.where((u & _SIGN_OFF) > _INF_BITS, u, r)    # NaN stays NaN, payload and all
    return r.view(np.float32)


def round_operands(precision: str, *operands: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each operand of a product rounded to ``precision`` (the arrays themselves for fp32)."""
    return tuple(round_operand(a, precision) for a in operands)
