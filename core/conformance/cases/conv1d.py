"""conv1d: valid time-axis convolution, its gradients and the params-only backward."""
from __future__ import annotations

import numpy as np

from genrecnn.conformance import reference as ref
from genrecnn.conformance.checks import (call, compare, device, gradcheck, output,
                                         tolerance_key, unpack)
from genrecnn.conformance.cases.common import layer_op_cases, normal
from genrecnn.engine.ops import precision_kwargs, round_operands

# (N, C, W, F, K): edge cases first, then shapes larger than a GPU thread block or tile
# in every direction, and shapes that take a GEMM backend's other paths (on a GPU of
# 132 multiprocessors): a reduction over C*K = 512 terms, the weight gradient split
# over time (N = 1, long W), and enough tiles for the large tiling in the forward
# (F, Wo >= 128) and in the input gradient (C, W >= 128)
CONV_SHAPES = [(1, 1, 1, 1, 1), (1, 3, 5, 2, 5), (2, 3, 10, 4, 3), (3, 8, 17, 5, 4),
               (2, 16, 33, 6, 1), (2, 40, 300, 33, 5), (2, 17, 129, 70, 1),
               (4, 128, 300, 32, 4), (1, 8, 2000, 40, 3), (66, 2, 131, 129, 3),
               (66, 129, 130, 2, 2)]
CONV_FD_SHAPES = [(1, 3, 5, 2, 5), (2, 3, 10, 4, 3)]


def _conv_label(s):
    n, c, w, f, k = s
    return f"N{n}C{c}W{w}F{f}K{k}" + ("-W=K" if w == k else "")


def _conv_inputs(rng, s, dtype):
    n, c, w, f, k = s
    return (normal(rng, (n, c, w), dtype), normal(rng, (f, c, k), dtype, 0.5),
            normal(rng, (f,), dtype), normal(rng, (n, f, w - k + 1), dtype))


def _conv_forward(be, dtype, rng, cfg, precision="fp32"):
    x, w, b, _ = _conv_inputs(rng, cfg, dtype)
    y = call(be, "conv1d", device(be, x), device(be, w), device(be, b),
             **precision_kwargs(precision))
    n, _, width, f, k = cfg
    return compare("conv1d y", output(be, y, "conv1d y", (n, f, width - k + 1), dtype),
                   ref.conv1d(*round_operands(precision, x, w), b),
                   tolerance_key(dtype, precision))


def _conv_backward(be, dtype, rng, cfg, precision="fp32"):
    x, w, b, dy = _conv_inputs(rng, cfg, dtype)
    at, tol = precision_kwargs(precision), tolerance_key(dtype, precision)
    xd, wd = device(be, x), device(be, w)
    be.conv1d(xd, wd, device(be, b), **at)    # as in training: the forward on the same x first
    out = call(be, "conv1d_backward", xd, wd, device(be, dy), **at)
    dx, dw, db = unpack(out, 3, "conv1d_backward")
    rdx, rdw, _ = ref.conv1d_backward(*round_operands(precision, x, w, dy))
    rdb = dy.sum(axis=(0, 2), dtype=np.float64)           # db sums dy as given
    out = call(be, "conv1d_backward_params", device(be, x), device(be, w), device(be, dy), **at)
    pdw, pdb = unpack(out, 2, "conv1d_backward_params")
    return max(compare("conv1d_backward dx", output(be, dx, "dx", x.shape, dtype), rdx, tol),
               compare("conv1d_backward dw", output(be, dw, "dw", w.shape, dtype), rdw, tol),
               compare("conv1d_backward db", output(be, db, "db", (cfg[3],), dtype), rdb, tol),
               compare("conv1d_backward_params dw", output(be, pdw, "dw", w.shape, dtype),
                       rdw, tol),
               compare("conv1d_backward_params db", output(be, pdb, "db", (cfg[3],), dtype),
                       rdb, tol))


def _conv_gradcheck(be, dtype, rng, cfg):
    x, w, b, dy = _conv_inputs(rng, cfg, dtype)

    def loss(x, w, b):
        y = be.to_host(be.conv1d(device(be, x), device(be, w), device(be, b)))
        return float((y * dy).sum())

    dx, dw, db = (be.to_host(a) for a in be.conv1d_backward(device(be, x), device(be, w),
                                                              device(be, dy)))
    return gradcheck(loss, {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, rng)


def conv1d_cases(dtype, precision="fp32"):
    return layer_op_cases("conv1d", dtype, _conv_label, CONV_SHAPES, CONV_FD_SHAPES,
                          _conv_forward, _conv_backward, _conv_gradcheck, precision)
