"""fused: batch norm + ReLU + 2-D max pooling against the composition of the three
references: odd sizes, one example or channel, overlapping and gapped windows, negative
and zero gamma, ties, an offset mean; its backward at the reference's argmax, and finite
differences of the whole block (float64)."""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance import reference_fused as ref
from genrecnn.conformance.cases.common import INDEX, Case, distinct, normal, ties
from genrecnn.conformance.cases.support import compare_outputs, seeded
from genrecnn.conformance.checks import (TOLERANCE, CheckFailed, call, compare, device, gradcheck,
                                         output, unpack)

EPS = 1e-5
# (N, C, H, W, size, stride, values, gamma): gamma "mixed" has a negative channel,
# "zero" a zero one (y is beta there: every window's first position is its maximum)
CONFIGS = [
    (2, 3, 8, 8, (2, 2), (2, 2), "normal", "mixed"),
    (1, 1, 9, 11, (2, 2), (2, 2), "normal", "positive"),    # N = C = 1, odd H and W
    (2, 3, 7, 9, (3, 3), (2, 2), "normal", "mixed"),        # overlapping windows
    (2, 2, 8, 9, (2, 3), (3, 1), "normal", "mixed"),        # a gap and an overlap
    (3, 3, 6, 7, (2, 2), (2, 2), "ties", "mixed"),
    (2, 3, 8, 8, (2, 2), (2, 2), "ties", "zero"),
    (2, 3, 9, 9, (3, 3), (2, 2), "ties", "zero"),           # ties shared by windows
    (4, 3, 6, 5, (2, 2), (2, 2), "offset", "mixed"),        # mean 10, spread 0.5
    (4, 40, 34, 36, (2, 2), (2, 2), "normal", "mixed"),     # larger than a GPU block
]
FD_CONFIGS = [(2, 3, 6, 7, (2, 2), (2, 2), "distinct", "mixed"),
              (1, 2, 7, 7, (3, 3), (2, 2), "distinct", "mixed")]


def _label(cfg):
    n, c, h, w, (kh, kw), (sh, sw), values, gamma = cfg
    return f"N{n}C{c}H{h}W{w}size{kh}x{kw}stride{sh}x{sw}-{values}-gamma-{gamma}"


def _values(rng, shape, values, dtype):
    return {"ties": lambda: ties(rng, shape, dtype),
            "distinct": lambda: distinct(rng, shape, dtype),
            "offset": lambda: (10 + normal(rng, shape, "float64", 0.5)).astype(dtype),
            "normal": lambda: normal(rng, shape, dtype)}[values]()


@seeded
def _data(rng, cfg, dtype):
    n, c, h, w, size, stride, values, kind = cfg
    z = _values(rng, (n, c, h, w), values, dtype)
    gamma = 0.5 + rng.random(c)
    beta = normal(rng, (c,), "float64", 0.5)
    if kind != "positive":
        gamma[::2] *= -1
    if kind == "zero":
        gamma[-1], beta[-1] = 0.0, 0.25
    gamma, beta = gamma.astype(dtype), beta.astype(dtype)
    p, arg, mean, invstd, y = ref.norm_relu_maxpool2d_train(z, gamma, beta, EPS, size, stride)
    mean, invstd = mean.astype(dtype), invstd.astype(dtype)
    dp = normal(rng, p.shape, dtype)
    run_mean, run_var = normal(rng, (c,), dtype), (0.5 + rng.random(c)).astype(dtype)
    back = ref.norm_relu_maxpool2d_backward(z, gamma, mean, invstd, arg, p.astype(dtype), dp)
    return {"z": z, "gamma": gamma, "beta": beta, "p": p, "argmax": arg, "mean": mean,
            "invstd": invstd, "y": y, "dp": dp, "dz": back[0], "dgamma": back[1],
            "dbeta": back[2], "running_mean": run_mean, "running_var": run_var,
            "infer": ref.norm_relu_maxpool2d_infer(z, gamma, beta, run_mean, run_var, EPS,
                                                   size, stride)}


def _check_argmax(got, d, cfg, dtype):
    """argmax must be the reference's, except where the reference's normalised values at
    the two positions differ (then by rounding only: within the tolerance) and the
    position lies in its window; equal values (ties, a zero gamma) allow no choice."""
    n, c, h, w, (kh, kw), (sh, sw) = cfg[:6]
    want, y = d["argmax"], d["y"].reshape(n, c, -1)
    if got.shape != want.shape:
        raise CheckFailed(f"fused argmax has shape {got.shape}, expected {want.shape}")
    i, j = np.indices(want.shape[2:])
    row, col = got // w, got % w
    inside = ((row >= i * sh) & (row < i * sh + kh) & (col >= j * sw) & (col < j * sw + kw)
              & (got >= 0) & (got < h * w))
    at_got = np.take_along_axis(y, np.clip(got, 0, h * w - 1).reshape(n, c, -1), 2)
    at_want = np.take_along_axis(y, want.reshape(n, c, -1), 2)
    gap = np.abs(at_got - at_want).reshape(want.shape)
    tol = 4 * TOLERANCE[dtype] * float(np.abs(y).max())
    ok = (got == want) | (inside & (gap > 0) & (gap <= tol))
    if not ok.all():
        idx = tuple(int(v) for v in np.argwhere(~ok)[0])
        raise CheckFailed(f"fused argmax{list(idx)} = {got[idx]} but the reference gives "
                          f"{want[idx]} (the first maximum of the normalised values)",
                          float("inf"))


def _forward(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    out = call(be, "norm_relu_maxpool2d_train", device(be, d["z"]), device(be, d["gamma"]),
               device(be, d["beta"]), EPS, cfg[4], cfg[5])
    p, arg, mean, invstd = unpack(out, 4, "norm_relu_maxpool2d_train")
    _check_argmax(output(be, arg, "fused argmax", d["p"].shape, INDEX), d, cfg, dtype)
    return compare_outputs(be, "fused", {"p": p, "mean": mean, "invstd": invstd}, d, dtype)


def _infer(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    p = call(be, "norm_relu_maxpool2d_infer", *(device(be, d[k]) for k in
                                                ("z", "gamma", "beta", "running_mean",
                                                 "running_var")), EPS, cfg[4], cfg[5])
    return compare("fused infer p", output(be, p, "fused infer p", d["infer"].shape, dtype),
                   d["infer"], dtype)


def _backward(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    p = d["p"].astype(dtype)
    out = call(be, "norm_relu_maxpool2d_backward",
               *(device(be, d[k]) for k in ("z", "gamma", "mean", "invstd", "argmax")),
               device(be, p), device(be, d["dp"]), cfg[4], cfg[5])
    dz, dgamma, dbeta = unpack(out, 3, "norm_relu_maxpool2d_backward")
    return compare_outputs(be, "fused backward", {"dz": dz, "dgamma": dgamma, "dbeta": dbeta},
                           d, dtype)


def _gradcheck(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    size, stride = cfg[4], cfg[5]

    def loss(z, gamma, beta):
        p = be.norm_relu_maxpool2d_train(device(be, z), device(be, gamma), device(be, beta),
                                         EPS, size, stride)[0]
        return float((be.to_host(p) * d["dp"]).sum())

    z, gamma = device(be, d["z"]), device(be, d["gamma"])
    p, arg, mean, invstd = be.norm_relu_maxpool2d_train(z, gamma, device(be, d["beta"]), EPS,
                                                        size, stride)
    grads = be.norm_relu_maxpool2d_backward(z, gamma, mean, invstd, arg, p, device(be, d["dp"]),
                                            size, stride)
    dz, dgamma, dbeta = (be.to_host(a) for a in grads)
    return gradcheck(loss, {"z": d["z"], "gamma": d["gamma"], "beta": d["beta"]},
                     {"z": dz, "gamma": dgamma, "beta": dbeta}, rng)


def fused_cases(dtype):
    out = [Case("fused", dtype, check, _label(c), functools.partial(fn, cfg=c))
           for check, fn in (("forward", _forward), ("infer", _infer), ("backward", _backward))
           for c in CONFIGS]
    if dtype == "float64":
        out += [Case("fused", dtype, "gradcheck", _label(c), functools.partial(_gradcheck, cfg=c))
                for c in FD_CONFIGS]
    return out
