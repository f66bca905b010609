"""dense: x @ w + b and its gradients."""
from __future__ import annotations

from genrecnn.conformance import reference as ref
from genrecnn.conformance.checks import call, compare, device, gradcheck, output, unpack
from genrecnn.conformance.cases.common import layer_op_cases, normal

# (N, I, O): edge cases, then long reductions that a GEMM backend splits (split-K: the
# forward over I = 3000 or 1536, the input gradient over O = 300 or 16769, the weight
# gradient over N = 300), and an output large enough for the large tiling (N, O >= 128
# and enough tiles on 132 multiprocessors)
DENSE_SHAPES = [(1, 1, 1), (1, 5, 3), (4, 7, 2), (8, 32, 10), (70, 300, 130), (5, 3000, 7),
                (32, 1536, 300), (300, 256, 200), (129, 3, 16769)]
DENSE_FD_SHAPES = [(1, 5, 3), (4, 7, 2)]


def _dense_inputs(rng, s, dtype):
    n, i, o = s
    return (normal(rng, (n, i), dtype), normal(rng, (i, o), dtype, 0.5),
            normal(rng, (o,), dtype), normal(rng, (n, o), dtype))


def _dense_forward(be, dtype, rng, cfg):
    x, w, b, _ = _dense_inputs(rng, cfg, dtype)
    y = call(be, "dense", device(be, x), device(be, w), device(be, b))
    return compare("dense y", output(be, y, "dense y", (cfg[0], cfg[2]), dtype), ref.dense(x, w, b),
                   dtype)


def _dense_backward(be, dtype, rng, cfg):
    x, w, _, dy = _dense_inputs(rng, cfg, dtype)
    dx, dw, db = unpack(call(be, "dense_backward", device(be, x), device(be, w), device(be, dy)),
                        3, "dense_backward")
    rdx, rdw, rdb = ref.dense_backward(x, w, dy)
    return max(compare("dense_backward dx", output(be, dx, "dx", x.shape, dtype), rdx, dtype),
               compare("dense_backward dw", output(be, dw, "dw", w.shape, dtype), rdw, dtype),
               compare("dense_backward db", output(be, db, "db", (cfg[2],), dtype), rdb, dtype))


def _dense_gradcheck(be, dtype, rng, cfg):
    x, w, b, dy = _dense_inputs(rng, cfg, dtype)

    def loss(x, w, b):
        return float((be.to_host(be.dense(device(be, x), device(be, w), device(be, b))) * dy).sum())

    dx, dw, db = (be.to_host(a) for a in be.dense_backward(device(be, x), device(be, w),
                                                             device(be, dy)))
    return gradcheck(loss, {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, rng)


def dense_cases(dtype):
    return layer_op_cases("dense", dtype, lambda s: "N{}I{}O{}".format(*s), DENSE_SHAPES,
                          DENSE_FD_SHAPES, _dense_forward, _dense_backward, _dense_gradcheck)
