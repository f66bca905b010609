"""batchnorm: batch statistics and their gradients, the running statistics updated in
place (unbiased, none for one value), inference with them; on 2, 3 and 4 axes."""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance import reference_maps as ref
from genrecnn.conformance.cases.common import Case, normal
from genrecnn.conformance.cases.support import call_in_place, compare_outputs, seeded
from genrecnn.conformance.checks import call, compare, device, gradcheck, output, unpack

# (x shape [N, C, ...], eps, values)
BN_CONFIGS = [
    ((1, 4), 1e-5, "normal"),                 # one value per channel: variance 0
    ((5, 3), 1e-5, "normal"),                 # after a dense layer
    ((2, 3, 7), 1e-3, "normal"),              # after a 1-D convolution
    ((2, 3, 4, 5), 1e-5, "normal"),           # after a 2-D convolution
    ((3, 2, 4, 4), 1e-5, "constant"),         # a channel without variance
    ((4, 3, 6, 5), 1e-5, "offset"),           # mean 10, spread 0.5: E[x^2] - mean^2 loses it
    # larger than a GPU thread block in every direction
    ((300, 70), 1e-5, "normal"),
    ((2, 40, 1100), 1e-5, "normal"),
    ((3, 35, 33, 40), 1e-5, "normal"),
]
BN_FD_CONFIGS = [((5, 3), 1e-5, "normal"), ((2, 3, 7), 1e-3, "normal"),
                 ((2, 3, 4, 5), 1e-5, "normal")]
# (momentum, count): count 1 has no unbiased correction
RUNNING = [(0.1, None), (0.3, 1)]


def _label(cfg):
    shape, eps, values = cfg
    tail = "" if values == "normal" else f"-{values}"
    return "x".join(map(str, shape)) + f"-eps{eps:g}{tail}"


@seeded
def _data(rng, cfg, dtype):
    shape, eps, values = cfg
    c = shape[1]
    x = normal(rng, shape, dtype)
    if values == "constant":
        x[:, 1] = 0.75
    elif values == "offset":
        x = (10 + normal(rng, shape, "float64", 0.5)).astype(dtype)
    gamma = (1 + normal(rng, (c,), "float64", 0.3)).astype(dtype)
    beta = normal(rng, (c,), dtype)
    y, mean, invstd = ref.batchnorm_train(x, gamma, beta, eps)
    dy = normal(rng, shape, dtype)
    mean, invstd = mean.astype(dtype), invstd.astype(dtype)
    dx, dgamma, dbeta = ref.batchnorm_backward(x, gamma, mean, invstd, dy)
    run_mean = normal(rng, (c,), dtype)
    run_var = (0.5 + rng.random(c)).astype(dtype)
    return {"x": x, "gamma": gamma, "beta": beta, "y": y, "mean": mean, "invstd": invstd,
            "dy": dy, "dx": dx, "dgamma": dgamma, "dbeta": dbeta, "running_mean": run_mean,
            "running_var": run_var,
            "infer": ref.batchnorm_infer(x, gamma, beta, run_mean, run_var, eps)}


def _forward(be, dtype, rng, cfg):
    d, eps = _data(cfg, dtype), cfg[1]
    out = call(be, "batchnorm_train", device(be, d["x"]), device(be, d["gamma"]),
               device(be, d["beta"]), eps)
    y, mean, invstd = unpack(out, 3, "batchnorm_train")
    return compare_outputs(be, "batchnorm_train", {"y": y, "mean": mean, "invstd": invstd}, d,
                           dtype)


def _infer(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    y = call(be, "batchnorm_infer", *(device(be, d[k]) for k in
                                      ("x", "gamma", "beta", "running_mean", "running_var")),
             cfg[1])
    return compare("batchnorm_infer y", output(be, y, "y", d["x"].shape, dtype), d["infer"],
                   dtype)


def _backward(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    out = call(be, "batchnorm_backward",
               *(device(be, d[k]) for k in ("x", "gamma", "mean", "invstd", "dy")))
    dx, dgamma, dbeta = unpack(out, 3, "batchnorm_backward")
    return compare_outputs(be, "batchnorm_backward", {"dx": dx, "dgamma": dgamma,
                                                      "dbeta": dbeta}, d, dtype)


def _running(be, dtype, rng, cfg, momentum, count):
    d, eps = _data(cfg, dtype), cfg[1]
    count = count or int(np.prod(cfg[0])) // cfg[0][1]
    args = {k: device(be, d[k]) for k in ("running_mean", "running_var", "mean", "invstd")}
    want = ref.batchnorm_running_update(d["running_mean"], d["running_var"], d["mean"],
                                        d["invstd"], count, momentum, eps)
    _, err = call_in_place(be, "batchnorm_running_update",
                           dict(args, count=count, momentum=momentum, eps=eps),
                           {"running_mean": want[0], "running_var": want[1]}, dtype)
    return err


def _gradcheck(be, dtype, rng, cfg):
    d, eps = _data(cfg, dtype), cfg[1]

    def loss(x, gamma, beta):
        y, _, _ = be.batchnorm_train(device(be, x), device(be, gamma), device(be, beta), eps)
        return float((be.to_host(y) * d["dy"]).sum())

    x, gamma = device(be, d["x"]), device(be, d["gamma"])
    _, mean, invstd = be.batchnorm_train(x, gamma, device(be, d["beta"]), eps)
    dx, dgamma, dbeta = (be.to_host(a) for a in
                         be.batchnorm_backward(x, gamma, mean, invstd, device(be, d["dy"])))
    return gradcheck(loss, {"x": d["x"], "gamma": d["gamma"], "beta": d["beta"]},
                     {"x": dx, "gamma": dgamma, "beta": dbeta}, rng)


def batchnorm_cases(dtype):
    out = []
    for check, fn in (("forward", _forward), ("infer", _infer), ("backward", _backward)):
        out += [Case("batchnorm", dtype, check, _label(c), functools.partial(fn, cfg=c))
                for c in BN_CONFIGS]
    out += [Case("batchnorm", dtype, "running", f"{_label(c)}-momentum{mom:g}"
                 + (f"-count{count}" if count else ""),
                 functools.partial(_running, cfg=c, momentum=mom, count=count))
            for c in BN_CONFIGS for mom, count in RUNNING]
    if dtype == "float64":
        out += [Case("batchnorm", dtype, "gradcheck", _label(c), functools.partial(_gradcheck, cfg=c))
                for c in BN_FD_CONFIGS]
    return out
