"""graph: ops recorded on a stream of the backend's own replay with the values their
inputs hold at replay time, as often as asked, and the backend returns to its
default stream afterwards."""
from __future__ import annotations

import numpy as np

from genrecnn.conformance import reference as ref
from genrecnn.conformance.checks import CheckFailed, compare, device, output
from genrecnn.conformance.cases.common import Case, normal


def _capture_replay(be, dtype, rng):
    n, i, o = 33, 300, 130
    x_host, w, b = normal(rng, (n, i), dtype), normal(rng, (i, o), dtype, 0.1), normal(rng, (o,), dtype)
    handle = be.new_stream()
    if not isinstance(handle, int):
        raise CheckFailed(f"new_stream returned {type(handle).__name__}, expected an int handle")
    try:
        x, wd, bd = device(be, x_host), device(be, w), device(be, b)
        be.capture_begin(True)
        try:
            y = be.activation("tanh", be.dense(x, wd, bd))
        finally:
            graph = be.capture_end(True)
        err = 0.0
        for rep in range(3):                       # new inputs, written in place, then replay
            x_host = normal(rng, (n, i), dtype)
            be.write(x, x_host)
            be.graph_launch(graph)
            got = output(be, y, f"replayed tanh(dense) #{rep + 1}", (n, o), dtype)
            err = max(err, compare(f"replay #{rep + 1} after write", got,
                                   ref.activation("tanh", ref.dense(x_host, w, b)), dtype))
    finally:
        be.synchronize()
        be.use_stream(None)
    after = be.to_host(be.activation("relu", device(be, x_host)))
    if not np.array_equal(after, np.maximum(x_host, 0)):
        raise CheckFailed("after use_stream(None) the backend no longer computes correctly")
    return err


def graph_cases(dtype):
    return [Case("graph", dtype, "capture", "dense-tanh-replay3", _capture_replay)]
