"""maxpool2d: window maxima with the first arg-max in row-major order; overlapping, gapped,
tied windows and NaN, which counts as the maximum."""
from __future__ import annotations

import numpy as np

from genrecnn.conformance import reference_maps as ref
from genrecnn.conformance.cases.common import INDEX, distinct, layer_op_cases, normal, ties
from genrecnn.conformance.cases.support import seeded
from genrecnn.conformance.checks import (call, compare, compare_exact, device, gradcheck, output,
                                         unpack)

# (N, C, H, W, size, stride, values)
POOL2D_CONFIGS = [
    (1, 1, 1, 1, (1, 1), (1, 1), "normal"),
    (1, 2, 4, 6, (4, 6), (4, 6), "normal"),        # one window covering the map
    (2, 3, 8, 8, (2, 2), (2, 2), "normal"),
    (2, 3, 9, 11, (2, 2), (2, 2), "normal"),       # windows that do not divide either axis
    (2, 3, 9, 10, (3, 2), (3, 2), "normal"),       # non-square
    (2, 2, 9, 9, (3, 3), (2, 2), "normal"),        # overlapping windows
    (1, 2, 7, 8, (2, 3), (1, 1), "normal"),        # stride 1: heavy overlap
    (2, 2, 10, 9, (2, 2), (3, 3), "normal"),       # stride > size: gaps
    (2, 2, 8, 9, (2, 3), (3, 1), "normal"),        # a gap on one axis, overlap on the other
    (2, 3, 8, 8, (2, 2), (2, 2), "ties"),
    (2, 2, 9, 9, (3, 3), (2, 2), "ties"),          # ties shared by overlapping windows
    (1, 2, 6, 6, (3, 2), (1, 2), "constant"),
    (2, 3, 8, 12, (2, 3), (2, 3), "nan"),
    (1, 2, 7, 7, (3, 3), (2, 2), "nan"),           # a NaN shared by overlapping windows
    # larger than a GPU thread block in every direction
    (2, 40, 66, 70, (2, 2), (2, 2), "normal"),
    (2, 33, 69, 70, (3, 3), (2, 2), "normal"),
]
POOL2D_FD_CONFIGS = [(2, 3, 9, 11, (2, 2), (2, 2), "distinct"),
                     (2, 2, 9, 9, (3, 3), (2, 2), "distinct"),
                     (1, 2, 7, 8, (2, 3), (1, 1), "distinct")]


def _label(cfg):
    n, c, h, w, (kh, kw), (sh, sw), values = cfg
    tail = "" if values in ("normal", "distinct") else f"-{values}"
    return f"N{n}C{c}H{h}W{w}size{kh}x{kw}stride{sh}x{sw}{tail}"


def _with_nan(rng, shape, dtype):
    """Random values, a few NaN, and planted windows where the first NaN in row-major
    order is not the first in column-major order, or follows a larger value."""
    x = normal(rng, shape, dtype)
    x[rng.random(shape) < 0.04] = np.nan
    x[0, 0, 1, 0] = x[0, 0, 0, 2] = np.nan      # window (0, 0): row-major first is (0, 2)
    x[0, 1, 0, 0] = 50.0
    x[0, 1, 1, 1] = np.nan                      # a NaN after the window's largest number
    x[-1, -1, :3, :3] = np.nan                  # windows of NaN only
    return x


@seeded
def _data(rng, cfg, dtype):
    n, c, h, w, size, stride, values = cfg
    shape = (n, c, h, w)
    x = {"ties": lambda: ties(rng, shape, dtype),
         "constant": lambda: np.full(shape, 0.5, dtype=dtype),
         "distinct": lambda: distinct(rng, shape, dtype),
         "nan": lambda: _with_nan(rng, shape, dtype),
         "normal": lambda: normal(rng, shape, dtype)}[values]()
    y, arg = ref.maxpool2d(x, size, stride)
    dy = normal(rng, y.shape, dtype)
    return {"x": x, "y": y, "argmax": arg, "dy": dy, "dx": ref.maxpool2d_backward(dy, arg, h, w)}


def _forward(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    y, arg = unpack(call(be, "maxpool2d", device(be, d["x"]), cfg[4], cfg[5]), 2, "maxpool2d")
    got = output(be, y, "maxpool2d y", d["y"].shape, dtype)
    compare_exact("maxpool2d argmax", output(be, arg, "maxpool2d argmax", d["y"].shape, INDEX),
                  d["argmax"])
    return compare("maxpool2d y", got, d["y"], dtype)     # NaN must sit where the reference's is


def _backward(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    dx = call(be, "maxpool2d_backward", device(be, d["dy"]), device(be, d["argmax"]),
              cfg[2], cfg[3])
    return compare("maxpool2d_backward dx", output(be, dx, "dx", d["x"].shape, dtype), d["dx"],
                   dtype)


def _gradcheck(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    size, stride = cfg[4], cfg[5]

    def loss(x):
        y, _ = be.maxpool2d(device(be, x), size, stride)
        return float((be.to_host(y) * d["dy"]).sum())

    _, arg = be.maxpool2d(device(be, d["x"]), size, stride)
    dx = be.to_host(be.maxpool2d_backward(device(be, d["dy"]), arg, cfg[2], cfg[3]))
    return gradcheck(loss, {"x": d["x"]}, {"x": dx}, rng)


def maxpool2d_cases(dtype):
    return layer_op_cases("maxpool2d", dtype, _label, POOL2D_CONFIGS, POOL2D_FD_CONFIGS,
                          _forward, _backward, _gradcheck)
