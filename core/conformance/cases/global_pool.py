"""global_pool: mean, max (first arg-max) and L2 norm over time; zero rows, ties, rows
around a warp's width, and NaN (the maximum: the arg-max points at a row's first NaN)."""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance import reference as ref
from genrecnn.conformance.checks import (call, compare, compare_exact, device, gradcheck, output,
                                         unpack)
from genrecnn.conformance.cases.common import (INDEX, Case, distinct, layer_op_cases, normal,
                                               ties, with_nans)

GPOOL_CONFIGS = [(1, 1, 1, "normal"), (2, 3, 7, "normal"), (3, 5, 16, "normal"),
                 (2, 4, 6, "zero-rows"), (2, 3, 8, "ties"), (2, 3, 5, "negative"),
                 (2, 3, 31, "normal"), (2, 5, 33, "ties"), (3, 70, 1100, "normal")]
GPOOL_FD_CONFIGS = [(2, 3, 7, "distinct"), (1, 4, 5, "distinct")]
# forward only: with NaN in x the L2 term of the gradient is left to each backend's IEEE
# arithmetic (0 or NaN), so the backward is not pinned down there
GPOOL_NAN_CONFIGS = [(2, 3, 9, "nan"), (2, 4, 70, "nan")]


def _gpool_label(cfg):
    n, c, w, values = cfg
    tail = "" if values in ("normal", "distinct") else f"-{values}"
    return f"N{n}C{c}W{w}{tail}"


def _gpool_x(rng, cfg, dtype):
    n, c, w, values = cfg
    if values == "ties":
        return ties(rng, (n, c, w), dtype)
    if values == "distinct":
        return distinct(rng, (n, c, w), dtype)
    if values == "nan":
        return with_nans(rng, (n, c, w), dtype)
    x = normal(rng, (n, c, w), dtype)
    if values == "negative":
        return -np.abs(x) - 1
    if values == "zero-rows":
        x[0, 1, :] = 0
        x[1, 0, :] = 0
        x[1, 3, :] = 0
    return x


def _gpool_forward(be, dtype, rng, cfg):
    x = _gpool_x(rng, cfg, dtype)
    y, arg = unpack(call(be, "global_pool", device(be, x)), 2, "global_pool")
    ry, rarg = ref.global_pool(x)
    err = compare("global_pool y", output(be, y, "global_pool y", ry.shape, dtype), ry, dtype)
    compare_exact("global_pool argmax", output(be, arg, "global_pool argmax", rarg.shape, INDEX),
                  rarg)
    return err


def _gpool_backward(be, dtype, rng, cfg):
    x = _gpool_x(rng, cfg, dtype)
    ry, rarg = ref.global_pool(x)
    y = ry.astype(dtype)
    dy = normal(rng, ry.shape, dtype)
    dx = call(be, "global_pool_backward", device(be, x), device(be, y), device(be, rarg),
              device(be, dy))
    return compare("global_pool_backward dx", output(be, dx, "dx", x.shape, dtype),
                   ref.global_pool_backward(x, y, rarg, dy), dtype)


def _gpool_gradcheck(be, dtype, rng, cfg):
    x = _gpool_x(rng, cfg, dtype)
    dy = normal(rng, (x.shape[0], 3 * x.shape[1]), dtype)

    def loss(x):
        y, _ = be.global_pool(device(be, x))
        return float((be.to_host(y) * dy).sum())

    xd = device(be, x)
    y, arg = be.global_pool(xd)
    dx = be.to_host(be.global_pool_backward(xd, y, arg, device(be, dy)))
    return gradcheck(loss, {"x": x}, {"x": dx}, rng)


def global_pool_cases(dtype):
    return layer_op_cases("global_pool", dtype, _gpool_label, GPOOL_CONFIGS, GPOOL_FD_CONFIGS,
                          _gpool_forward, _gpool_backward, _gpool_gradcheck) + [
        Case("global_pool", dtype, "forward", _gpool_label(c),
             functools.partial(_gpool_forward, cfg=c)) for c in GPOOL_NAN_CONFIGS]
