"""dense: x @ w + b and its gradients; at tf32 and bf16 also the rounding of single
operands (ties, NaN, overflow), seen through a product with 1."""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance import reference as ref
from genrecnn.conformance.checks import (call, compare, device, gradcheck, output,
                                         tolerance_key, unpack)
from genrecnn.conformance.cases.common import Case, layer_op_cases, normal
from genrecnn.engine.ops import MANTISSA_BITS, precision_kwargs, round_operands

# (N, I, O): edge cases, then long reductions that a GEMM backend splits (split-K: the
# forward over I = 3000 or 1536, the input gradient over O = 300 or 16769, the weight
# gradient over N = 300), and an output large enough for the large tiling (N, O >= 128
# and enough tiles on 132 multiprocessors)
DENSE_SHAPES = [(1, 1, 1), (1, 5, 3), (4, 7, 2), (8, 32, 10), (70, 300, 130), (5, 3000, 7),
                (32, 1536, 300), (300, 256, 200), (129, 3, 16769)]
DENSE_FD_SHAPES = [(1, 5, 3), (4, 7, 2)]


def _dense_inputs(rng, s, dtype):
    n, i, o = s
    return (normal(rng, (n, i), dtype), normal(rng, (i, o), dtype, 0.5),
            normal(rng, (o,), dtype), normal(rng, (n, o), dtype))


def _dense_forward(be, dtype, rng, cfg, precision="fp32", x=None, w=None, b=None):
    if x is None:
        x, w, b, _ = _dense_inputs(rng, cfg, dtype)
    y = call(be, "dense", device(be, x), device(be, w), device(be, b),
             **precision_kwargs(precision))
    return compare("dense y", output(be, y, "dense y", (cfg[0], cfg[2]), dtype),
                   ref.dense(*round_operands(precision, x, w), b), tolerance_key(dtype, precision))


def _dense_backward(be, dtype, rng, cfg, precision="fp32", x=None, w=None, dy=None):
    if x is None:
        x, w, _, dy = _dense_inputs(rng, cfg, dtype)
    tol = tolerance_key(dtype, precision)
    dx, dw, db = unpack(call(be, "dense_backward", device(be, x), device(be, w), device(be, dy),
                             **precision_kwargs(precision)), 3, "dense_backward")
    rdx, rdw, _ = ref.dense_backward(*round_operands(precision, x, w, dy))
    rdb = dy.sum(axis=0, dtype=np.float64)                # db sums dy as given
    return max(compare("dense_backward dx", output(be, dx, "dx", x.shape, dtype), rdx, tol),
               compare("dense_backward dw", output(be, dw, "dw", w.shape, dtype), rdw, tol),
               compare("dense_backward db", output(be, db, "db", (cfg[2],), dtype), rdb, tol))


def tie_values(precision: str) -> np.ndarray:
    """float32 values in [1, 2) and (-2, -1] exactly halfway between two of
    ``precision``'s (half even, half odd below: ties go down, then up), one float32 ulp
    either side of a tie, and values already exact."""
    ulp = 2.0 ** -MANTISSA_BITS[precision]
    tiny = 2.0 ** -23
    grid = 1 + ulp * np.arange(8)
    vals = np.concatenate([grid + ulp / 2, grid + ulp / 2 - tiny, grid + ulp / 2 + tiny, grid])
    return np.concatenate([vals, -vals]).astype(np.float32)


def special_values() -> np.ndarray:
    """A NaN whose payload lies in the low bits only (the rounding's carry would make
    it inf), the largest float32 (rounds past the largest tf32 / bf16 value: inf),
    both infinities and both zeros."""
    bits = np.array([0x7F800001, 0xFF800001, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000,
                     0x00000000, 0x80000000], dtype=np.uint32)
    return bits.view(np.float32)


def _rounding_forward(be, dtype, rng, cfg, precision):
    x = np.concatenate([tie_values(precision), special_values()])[:, None]
    one = np.ones((1, 1), dtype=np.float32)
    with np.errstate(invalid="ignore"):       # NumPy warns of the signalling NaN
        return _dense_forward(be, dtype, rng, (len(x), 1, 1), precision, x, one,
                              np.zeros(1, dtype=np.float32))


def _rounding_backward(be, dtype, rng, cfg, precision):
    ties = tie_values(precision)[:, None]
    return _dense_backward(be, dtype, rng, (len(ties), 1, 1), precision, ties,
                           np.ones((1, 1), dtype=np.float32), ties[::-1].copy())


def rounding_cases(dtype, precision) -> list[Case]:
    """Operands rounded to nearest, ties to even, NaN kept, overflow to inf: dense with
    w = 1 gives ``x`` rounded (forward) and ``dy`` rounded (backward's dx)."""
    return [Case("dense", dtype, check, "rounding", functools.partial(fn, cfg=None,
                                                                        precision=precision),
                 precision)
            for check, fn in (("forward", _rounding_forward), ("backward", _rounding_backward))]


def _dense_gradcheck(be, dtype, rng, cfg):
    x, w, b, dy = _dense_inputs(rng, cfg, dtype)

    def loss(x, w, b):
        return float((be.to_host(be.dense(device(be, x), device(be, w), device(be, b))) * dy).sum())

    dx, dw, db = (be.to_host(a) for a in be.dense_backward(device(be, x), device(be, w),
                                                             device(be, dy)))
    return gradcheck(loss, {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, rng)


def dense_cases(dtype, precision="fp32"):
    cases = layer_op_cases("dense", dtype, lambda s: "N{}I{}O{}".format(*s), DENSE_SHAPES,
                           DENSE_FD_SHAPES, _dense_forward, _dense_backward, _dense_gradcheck,
                           precision)
    return cases + (rounding_cases(dtype, precision) if precision != "fp32" else [])
