"""Activations: relu, leaky relu, sigmoid and tanh, huge inputs and NaN included."""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance import reference as ref
from genrecnn.conformance.checks import call, compare, device, gradcheck, output
from genrecnn.conformance.cases.common import Case, normal, with_nans
from genrecnn.engine.ops import ACTIVATIONS

LARGE = np.array([[-1000.0, -100.0, -40.0, -20.0, -1.0, -0.0, 0.0, 1.0, 20.0, 40.0, 100.0, 1000.0]])
ACT_KINDS = [(k, 0.01) for k in ACTIVATIONS] + [("leaky_relu", 0.2)]


def _act_x(rng, values, dtype):
    if values == "2d":
        return normal(rng, (4, 6), dtype, 2.0)
    if values == "3d":
        return normal(rng, (2, 3, 5), dtype, 2.0)
    if values == "odd":                 # 105 elements: no whole number of 16-byte vectors
        return normal(rng, (3, 5, 7), dtype, 2.0)
    if values == "large":
        return LARGE.astype(dtype)
    if values == "big":
        return normal(rng, (3, 70, 1100), dtype, 3.0)
    if values == "nan":                 # NaN stays NaN; in the backward it is not > 0
        return with_nans(rng, (5, 2, 9), dtype)
    # away from the kink at 0, so finite differences see one side only
    x = rng.standard_normal((3, 5))
    return (np.sign(x) * (0.1 + np.abs(x))).astype(dtype)


def _act_label(kind, slope, values):
    return f"{kind}" + (f"-slope{slope:g}" if kind == "leaky_relu" else "") + f"-{values}"


def _act_forward(be, dtype, rng, kind, slope, values):
    x = _act_x(rng, values, dtype)
    y = call(be, "activation", kind, device(be, x), slope)
    return compare(f"activation({kind}) y", output(be, y, f"{kind} y", x.shape, dtype),
                   ref.activation(kind, x, slope), dtype)


def _act_backward(be, dtype, rng, kind, slope, values):
    x = _act_x(rng, values, dtype)
    y = ref.activation(kind, x, slope).astype(dtype)
    dy = normal(rng, x.shape, dtype)
    dx = call(be, "activation_backward", kind, device(be, x), device(be, y), device(be, dy), slope)
    return compare(f"activation_backward({kind}) dx", output(be, dx, "dx", x.shape, dtype),
                   ref.activation_backward(kind, x, y, dy, slope), dtype)


def _act_gradcheck(be, dtype, rng, kind, slope, values):
    x = _act_x(rng, values, dtype)
    dy = normal(rng, x.shape, dtype)

    def loss(x):
        return float((be.to_host(be.activation(kind, device(be, x), slope)) * dy).sum())

    xd = device(be, x)
    y = be.activation(kind, xd, slope)
    dx = be.to_host(be.activation_backward(kind, xd, y, device(be, dy), slope))
    return gradcheck(loss, {"x": x}, {"x": dx}, rng)


def activation_cases(dtype):
    out = []
    for kind, slope in ACT_KINDS:
        for values in ("2d", "3d", "odd", "large", "big", "nan"):
            out.append(Case("activation", dtype, "forward", _act_label(kind, slope, values),
                            functools.partial(_act_forward, kind=kind, slope=slope, values=values)))
            out.append(Case("activation", dtype, "backward", _act_label(kind, slope, values),
                            functools.partial(_act_backward, kind=kind, slope=slope, values=values)))
        if dtype == "float64":
            out.append(Case("activation", dtype, "gradcheck", _act_label(kind, slope, "smooth"),
                            functools.partial(_act_gradcheck, kind=kind, slope=slope,
                                              values="smooth")))
    return out
