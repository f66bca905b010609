"""maxpool1d: window maxima with the first arg-max; overlapping, gapped and tied
windows, and NaN (the maximum: the arg-max points at a window's first NaN)."""
from __future__ import annotations

import numpy as np

from genrecnn.conformance import reference as ref
from genrecnn.conformance.checks import (call, compare, compare_exact, device, gradcheck, output,
                                         unpack)
from genrecnn.conformance.cases.common import (INDEX, distinct, layer_op_cases, normal, ties,
                                               with_nans)

# (N, C, W, size, stride, values)
POOL_CONFIGS = [
    (1, 1, 1, 1, 1, "normal"),
    (1, 1, 4, 4, 4, "normal"),          # one window covering the width
    (2, 3, 12, 4, 4, "normal"),
    (2, 3, 13, 4, 4, "normal"),         # size does not divide the width
    (2, 3, 11, 3, 2, "normal"),         # overlapping windows
    (1, 2, 9, 4, 1, "normal"),          # stride 1: heavy overlap
    (2, 2, 10, 2, 3, "normal"),         # stride > size: gaps
    (2, 3, 12, 4, 4, "ties"),
    (2, 3, 11, 3, 2, "ties"),           # ties shared by overlapping windows
    (1, 2, 8, 3, 1, "constant"),
    (2, 3, 12, 4, 4, "nan"),
    (2, 3, 11, 3, 2, "nan"),            # NaN shared by overlapping windows
    (3, 70, 1030, 4, 4, "normal"),
    (2, 33, 1030, 5, 3, "normal"),
    (3, 4, 1289, 4, 4, "ties"),         # ties across several GPU thread blocks
]
POOL_FD_CONFIGS = [(2, 3, 13, 4, 4, "distinct"), (2, 3, 11, 3, 2, "distinct"),
                   (1, 2, 9, 4, 1, "distinct")]


def _pool_label(cfg):
    n, c, w, size, stride, values = cfg
    tail = "" if values in ("normal", "distinct") else f"-{values}"
    return f"N{n}C{c}W{w}size{size}stride{stride}{tail}"


def _pool_x(rng, cfg, dtype):
    n, c, w, _, _, values = cfg
    if values == "ties":
        return ties(rng, (n, c, w), dtype)
    if values == "constant":
        return np.full((n, c, w), 0.5, dtype=dtype)
    if values == "distinct":
        return distinct(rng, (n, c, w), dtype)
    if values == "nan":
        return with_nans(rng, (n, c, w), dtype)
    return normal(rng, (n, c, w), dtype)


def _pool_forward(be, dtype, rng, cfg):
    n, c, w, size, stride, _ = cfg
    x = _pool_x(rng, cfg, dtype)
    y, arg = unpack(call(be, "maxpool1d", device(be, x), size, stride), 2, "maxpool1d")
    ry, rarg = ref.maxpool1d(x, size, stride)
    err = compare("maxpool1d y", output(be, y, "maxpool1d y", ry.shape, dtype), ry, dtype)
    compare_exact("maxpool1d argmax", output(be, arg, "maxpool1d argmax", rarg.shape, INDEX), rarg)
    return err


def _pool_backward(be, dtype, rng, cfg):
    n, c, w, size, stride, _ = cfg
    x = _pool_x(rng, cfg, dtype)
    _, rarg = ref.maxpool1d(x, size, stride)
    dy = normal(rng, rarg.shape, dtype)
    dx = call(be, "maxpool1d_backward", device(be, dy), device(be, rarg), w)
    return compare("maxpool1d_backward dx", output(be, dx, "dx", x.shape, dtype),
                   ref.maxpool1d_backward(dy, rarg, w), dtype)


def _pool_gradcheck(be, dtype, rng, cfg):
    n, c, w, size, stride, _ = cfg
    x = _pool_x(rng, cfg, dtype)
    dy = normal(rng, ref.maxpool1d(x, size, stride)[1].shape, dtype)

    def loss(x):
        y, _ = be.maxpool1d(device(be, x), size, stride)
        return float((be.to_host(y) * dy).sum())

    _, arg = be.maxpool1d(device(be, x), size, stride)
    dx = be.to_host(be.maxpool1d_backward(device(be, dy), arg, w))
    return gradcheck(loss, {"x": x}, {"x": dx}, rng)


def maxpool1d_cases(dtype):
    return layer_op_cases("maxpool1d", dtype, _pool_label, POOL_CONFIGS, POOL_FD_CONFIGS,
                           _pool_forward, _pool_backward, _pool_gradcheck)
