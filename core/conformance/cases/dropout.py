"""dropout: the keyed mask, bit for bit the reference hash's, scaled by 1 / (1 - rate);
the backward pass redraws it from the same key."""
from __future__ import annotations

import numpy as np

from genrecnn.conformance import reference_maps as ref
from genrecnn.conformance.cases.common import layer_op_cases, normal
from genrecnn.conformance.cases.support import seeded
from genrecnn.conformance.checks import call, compare, compare_exact, device, gradcheck, output

# (shape, rate, (seed, offset)); keys are int32 read as unsigned, so negative ones too.
# "edge" and "past-edge" are the rates at and just above one element's draw / 2^24.
DROPOUT_CONFIGS = [
    ((7,), 0.0, (0, 0)),                          # rate 0 keeps everything
    ((3, 50), 0.5, (1234, 0)),
    ((3, 50), 0.5, (1234, 1)),                    # the next step: another mask
    ((2, 3, 4, 5), 0.9, (-1, -7)),
    ((2, 3, 9), 0.99, (42, 123456)),
    ((4, 64), "edge", (5, 9)),
    ((4, 64), "past-edge", (5, 9)),               # a float32 rate would round down to the edge
    # larger than a GPU thread block and grid-stride step
    ((33, 70, 300), 0.3, (7, 2 ** 31 - 1)),
]
DROPOUT_FD_CONFIGS = [((3, 50), 0.5, (1234, 0)), ((2, 3, 4, 5), 0.9, (-1, -7))]


def _label(cfg):
    shape, rate, (seed, offset) = cfg
    rate = rate if isinstance(rate, str) else f"{rate:g}"
    return "x".join(map(str, shape)) + f"-rate{rate}-key{seed},{offset}"


def _rate(cfg) -> float:
    shape, rate, key = cfg
    if not isinstance(rate, str):
        return rate
    bits = ref.dropout_bits(int(np.prod(shape)), key)
    edge = float(np.sort(bits)[len(bits) // 2]) / 2 ** 24        # a draw near the middle
    return edge if rate == "edge" else float(np.nextafter(edge, 1.0))


@seeded
def _data(rng, cfg, dtype):
    shape, _, key = cfg
    rate = _rate(cfg)
    x, dy = normal(rng, shape, dtype), normal(rng, shape, dtype)
    x[x == 0] = dy[dy == 0] = 1                    # no zeros: a zero out is a dropped element
    return {"x": x, "dy": dy, "key": np.array(key, dtype=np.int32), "rate": rate,
            "keep": ref.dropout_keep(shape, rate, key), "y": ref.dropout(x, rate, key),
            "dx": ref.dropout_backward(dy, rate, key)}


def _check(be, dtype, cfg, method, inp, want):
    d = _data(cfg, dtype)
    got = output(be, call(be, method, device(be, d[inp]), d["rate"], device(be, d["key"])),
                 f"{method} result", d[inp].shape, dtype)
    compare_exact(f"{method} mask (kept)", (got != 0).astype(np.int32),
                  d["keep"].astype(np.int32))
    return compare(f"{method} result", got, d[want], dtype)


def _forward(be, dtype, rng, cfg):
    return _check(be, dtype, cfg, "dropout", "x", "y")


def _backward(be, dtype, rng, cfg):
    return _check(be, dtype, cfg, "dropout_backward", "dy", "dx")


def _gradcheck(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    key = device(be, d["key"])

    def loss(x):
        return float((be.to_host(be.dropout(device(be, x), d["rate"], key)) * d["dy"]).sum())

    dx = be.to_host(be.dropout_backward(device(be, d["dy"]), d["rate"], key))
    return gradcheck(loss, {"x": d["x"]}, {"x": dx}, rng)


def dropout_cases(dtype):
    return layer_op_cases("dropout", dtype, _label, DROPOUT_CONFIGS, DROPOUT_FD_CONFIGS,
                          _forward, _backward, _gradcheck)
