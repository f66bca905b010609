"""conv2d: strided, zero-padded 2-D convolution, its gradients and the params-only backward."""
from __future__ import annotations

import numpy as np

from genrecnn.conformance import reference_maps as ref
from genrecnn.conformance.cases.common import layer_op_cases, normal
from genrecnn.conformance.cases.support import seeded
from genrecnn.conformance.checks import (call, compare, device, gradcheck, output,
                                         tolerance_key, unpack)
from genrecnn.engine.ops import precision_kwargs, round_operands

# (N, C, H, W, F, kernel, stride, padding)
CONV2D_CONFIGS = [
    (1, 1, 1, 1, 1, (1, 1), (1, 1), (0, 0)),
    (1, 2, 5, 6, 3, (5, 6), (1, 1), (0, 0)),       # the kernel covers the input: one output
    (2, 3, 7, 9, 4, (3, 3), (1, 1), (1, 1)),       # "same" padding
    (2, 3, 9, 11, 4, (2, 3), (2, 3), (0, 1)),      # non-square, strides 2 and 3, windows left over
    (2, 2, 6, 5, 3, (3, 2), (3, 1), (2, 0)),       # padding on one axis only, stride 3
    (1, 2, 4, 5, 2, (2, 3), (1, 2), (3, 4)),       # padding larger than the kernel
    (3, 4, 10, 10, 5, (1, 1), (1, 1), (0, 0)),     # 1x1
    (2, 3, 9, 9, 4, (1, 1), (2, 2), (1, 0)),       # 1x1 with stride and padding
    (40, 3, 6, 6, 5, (3, 3), (1, 1), (1, 1)),      # a large batch of small maps
    # larger than a GPU thread block or GEMM tile in every direction
    (2, 20, 35, 67, 70, (3, 3), (1, 1), (1, 1)),
    (3, 5, 70, 140, 33, (5, 3), (2, 3), (2, 0)),
    # one input channel (a spectrogram's first layer; CUDA backends may run it directly)
    (3, 1, 70, 140, 6, (3, 3), (1, 1), (1, 1)),
    (2, 1, 33, 41, 3, (5, 5), (2, 1), (2, 2)),
    (1, 1, 40, 50, 2, (7, 7), (1, 3), (3, 0)),
]
CONV2D_FD_CONFIGS = [(2, 3, 7, 9, 4, (3, 3), (1, 1), (1, 1)),
                     (2, 2, 9, 11, 3, (2, 3), (2, 3), (0, 1)),
                     (1, 2, 4, 5, 2, (2, 3), (1, 2), (3, 4))]


def _label(cfg):
    n, c, h, w, f, (kh, kw), (sh, sw), (ph, pw) = cfg
    return f"N{n}C{c}H{h}W{w}F{f}K{kh}x{kw}S{sh}x{sw}P{ph}x{pw}"


@seeded
def _data(rng, cfg, dtype, precision="fp32"):
    """Inputs, and the reference on the operands rounded to ``precision``."""
    n, c, h, w, f, kernel, stride, padding = cfg
    x = normal(rng, (n, c, h, w), dtype)
    wt = normal(rng, (f, c, *kernel), dtype, 0.5)
    b = normal(rng, (f,), dtype)
    y = ref.conv2d(*round_operands(precision, x, wt), b, stride, padding)
    dy = normal(rng, y.shape, dtype)
    dx, dw, _ = ref.conv2d_backward(*round_operands(precision, x, wt, dy), stride, padding)
    db = dy.sum(axis=(0, 2, 3), dtype=np.float64)         # db sums dy as given
    return {"x": x, "w": wt, "b": b, "y": y, "dy": dy, "dx": dx, "dw": dw, "db": db}


def _forward(be, dtype, rng, cfg, precision="fp32"):
    d = _data(cfg, dtype, *_beyond_fp32(precision))
    y = call(be, "conv2d", device(be, d["x"]), device(be, d["w"]), device(be, d["b"]),
             cfg[6], cfg[7], **precision_kwargs(precision))
    return compare("conv2d y", output(be, y, "conv2d y", d["y"].shape, dtype), d["y"],
                   tolerance_key(dtype, precision))


def _backward(be, dtype, rng, cfg, precision="fp32"):
    d = _data(cfg, dtype, *_beyond_fp32(precision))
    args = (device(be, d["x"]), device(be, d["w"]), device(be, d["dy"]), cfg[6], cfg[7])
    at, tol = precision_kwargs(precision), tolerance_key(dtype, precision)
    dx, dw, db = unpack(call(be, "conv2d_backward", *args, **at), 3, "conv2d_backward")
    pdw, pdb = unpack(call(be, "conv2d_backward_params", *args, **at), 2,
                      "conv2d_backward_params")
    errs = [compare(f"{what} {name}", output(be, got, name, d[name].shape, dtype), d[name], tol)
            for what, got, name in (("conv2d_backward", dx, "dx"), ("conv2d_backward", dw, "dw"),
                                    ("conv2d_backward", db, "db"),
                                    ("conv2d_backward_params", pdw, "dw"),
                                    ("conv2d_backward_params", pdb, "db"))]
    return max(errs)


def _beyond_fp32(precision) -> tuple:
    """The precision as a key of :func:`_data` (none for fp32: its inputs as ever)."""
    return () if precision == "fp32" else (precision,)


def _gradcheck(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    stride, padding = cfg[6], cfg[7]

    def loss(x, w, b):
        y = be.conv2d(device(be, x), device(be, w), device(be, b), stride, padding)
        return float((be.to_host(y) * d["dy"]).sum())

    grads = be.conv2d_backward(device(be, d["x"]), device(be, d["w"]), device(be, d["dy"]),
                               stride, padding)
    dx, dw, db = (be.to_host(a) for a in grads)
    return gradcheck(loss, {"x": d["x"], "w": d["w"], "b": d["b"]},
                     {"x": dx, "w": dw, "b": db}, rng)


def conv2d_cases(dtype, precision="fp32"):
    return layer_op_cases("conv2d", dtype, _label, CONV2D_CONFIGS, CONV2D_FD_CONFIGS,
                          _forward, _backward, _gradcheck, precision)
