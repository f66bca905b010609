"""Every conformance case: (op group, dtype, check, shape label) -> a function of a backend.

A case returns its largest scaled error or raises :class:`CheckFailed`.
Inputs are drawn from a generator seeded by the case's id, so a failure
reproduces exactly. The grid covers the edge cases named in the contract:
batch 1, width equal to the kernel, pools that do not divide the width,
overlapping and gapped pools, ties, all-zero rows, huge logits and large
activations. Finite-difference cases (``gradcheck``) exist for float64 only;
float32 backward ops are checked against the reference's analytic gradient,
which is itself proven by finite differences in genrecnn's tests.
"""
from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from genrecnn.engine.ops import ACTIVATIONS, OP_GROUPS

from . import reference as ref
from .checks import (CheckFailed, call, compare, compare_exact, device, gradcheck, output,
                     unpack)

INDEX = "int32"


@dataclass(frozen=True)
class Case:
    """One check of one op group at one dtype; ``id`` is its readable name."""

    group: str
    dtype: str
    check: str
    label: str
    fn: Callable

    @property
    def id(self) -> str:
        return f"{self.group}-{self.dtype}-{self.check}-{self.label}"

    def run(self, be) -> float:
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        return float(self.fn(be, self.dtype, rng))


def _normal(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _distinct(rng, shape, dtype):
    """Values in about [-2, 2], pairwise at least 4/size apart (no ties, safe for FD)."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) * (4.0 / max(size, 1))).reshape(shape).astype(dtype)


def _ties(rng, shape, dtype):
    return rng.integers(0, 3, size=shape).astype(dtype)


def _labels(rng, n, k):
    return rng.integers(0, k, size=n).astype(np.int32)


# -- transfer ----------------------------------------------------------------------------------

def _special(dtype):
    if dtype == INDEX:
        info = np.iinfo(np.int32)
        return np.array([[0, 1, -1, info.min], [info.max, 7, -7, 42]], dtype=np.int32)
    info = np.finfo(dtype)
    return np.array([[0.0, -0.0, info.tiny, -info.tiny],
                     [info.max, -info.max, info.eps, 1.0 / 3.0]], dtype=dtype)


def _host_data(rng, shape, dtype):
    if dtype == INDEX:
        return rng.integers(-1000, 1000, size=shape).astype(np.int32)
    return _normal(rng, shape, dtype, 10.0)


def _roundtrip(be, dtype, rng, shape, how):
    if how == "special":
        a = _special(dtype)
    elif how == "noncontiguous":
        a = _host_data(rng, shape, dtype).T           # a transposed (Fortran-order) view
    else:
        a = _host_data(rng, shape, dtype)
    keep = a.copy()
    d = be.from_host(a)
    if a.size:
        a[...] = a.flat[0] if how != "special" else 5   # the device copy must not see this
    h = output(be, d, "from_host result", keep.shape, dtype)
    if not (np.array_equal(h, keep) and np.array_equal(np.signbit(h), np.signbit(keep))):
        idx = tuple(int(i) for i in np.argwhere((h != keep) | (np.signbit(h) != np.signbit(keep)))[0])
        raise CheckFailed(f"to_host(from_host(a)){list(idx)} = {h[idx]!r}, expected {keep[idx]!r} "
                          f"(round trip must be exact, and later host changes must not show)",
                          float("inf"))
    return 0.0


def _zeros(be, dtype, rng, shape):
    h = output(be, be.zeros(shape, dtype), f"zeros({shape}, {dtype!r})", shape, dtype)
    if np.any(h != 0):
        raise CheckFailed(f"zeros({shape}, {dtype!r}) holds non-zero values", float("inf"))
    return 0.0


def transfer_cases(dtype):
    shapes = {"1": (1,), "3x4": (3, 4), "2x3x5": (2, 3, 5), "0x4": (0, 4)}
    out = [Case("transfer", dtype, "roundtrip", k, functools.partial(_roundtrip, shape=s, how="random"))
           for k, s in shapes.items()]
    out.append(Case("transfer", dtype, "roundtrip", "noncontiguous",
                    functools.partial(_roundtrip, shape=(4, 6), how="noncontiguous")))
    out.append(Case("transfer", dtype, "roundtrip", "extremes",
                    functools.partial(_roundtrip, shape=None, how="special")))
    out += [Case("transfer", dtype, "zeros", k, functools.partial(_zeros, shape=s))
            for k, s in shapes.items() if k != "0x4"]
    return out


def _layer_op_cases(group, dtype, label, configs, fd_configs, forward, backward, gradcheck):
    """Forward and backward against the reference on every config, and (float64
    only) finite differences on the small ``fd_configs``; each check is called
    as ``check(be, dtype, rng, cfg=config)``."""
    def cases(check, fn, cfgs):
        return [Case(group, dtype, check, label(c), functools.partial(fn, cfg=c)) for c in cfgs]
    out = cases("forward", forward, configs) + cases("backward", backward, configs)
    if dtype == "float64":
        out += cases("gradcheck", gradcheck, fd_configs)
    return out


# -- conv1d ------------------------------------------------------------------------------------

# the last shape of each grid is larger than one GPU thread block in every direction
CONV_SHAPES = [(1, 1, 1, 1, 1), (1, 3, 5, 2, 5), (2, 3, 10, 4, 3), (3, 8, 17, 5, 4),
               (2, 16, 33, 6, 1), (2, 40, 300, 33, 5)]
CONV_FD_SHAPES = [(1, 3, 5, 2, 5), (2, 3, 10, 4, 3)]


def _conv_label(s):
    n, c, w, f, k = s
    return f"N{n}C{c}W{w}F{f}K{k}" + ("-W=K" if w == k else "")


def _conv_inputs(rng, s, dtype):
    n, c, w, f, k = s
    return (_normal(rng, (n, c, w), dtype), _normal(rng, (f, c, k), dtype, 0.5),
            _normal(rng, (f,), dtype), _normal(rng, (n, f, w - k + 1), dtype))


def _conv_forward(be, dtype, rng, cfg):
    x, w, b, _ = _conv_inputs(rng, cfg, dtype)
    y = call(be, "conv1d", device(be, x), device(be, w), device(be, b))
    n, _, width, f, k = cfg
    return compare("conv1d y", output(be, y, "conv1d y", (n, f, width - k + 1), dtype),
                   ref.conv1d(x, w, b), dtype)


def _conv_backward(be, dtype, rng, cfg):
    x, w, _, dy = _conv_inputs(rng, cfg, dtype)
    out = call(be, "conv1d_backward", device(be, x), device(be, w), device(be, dy))
    dx, dw, db = unpack(out, 3, "conv1d_backward")
    rdx, rdw, rdb = ref.conv1d_backward(x, w, dy)
    out = call(be, "conv1d_backward_params", device(be, x), device(be, w), device(be, dy))
    pdw, pdb = unpack(out, 2, "conv1d_backward_params")
    return max(compare("conv1d_backward dx", output(be, dx, "dx", x.shape, dtype), rdx, dtype),
               compare("conv1d_backward dw", output(be, dw, "dw", w.shape, dtype), rdw, dtype),
               compare("conv1d_backward db", output(be, db, "db", (cfg[3],), dtype), rdb, dtype),
               compare("conv1d_backward_params dw", output(be, pdw, "dw", w.shape, dtype),
                       rdw, dtype),
               compare("conv1d_backward_params db", output(be, pdb, "db", (cfg[3],), dtype),
                       rdb, dtype))


def _conv_gradcheck(be, dtype, rng, cfg):
    x, w, b, dy = _conv_inputs(rng, cfg, dtype)

    def loss(x, w, b):
        y = be.to_host(be.conv1d(device(be, x), device(be, w), device(be, b)))
        return float((y * dy).sum())

    dx, dw, db = (be.to_host(a) for a in be.conv1d_backward(device(be, x), device(be, w),
                                                              device(be, dy)))
    return gradcheck(loss, {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, rng)


def conv1d_cases(dtype):
    return _layer_op_cases("conv1d", dtype, _conv_label, CONV_SHAPES, CONV_FD_SHAPES,
                           _conv_forward, _conv_backward, _conv_gradcheck)


# -- maxpool1d ---------------------------------------------------------------------------------

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
    (3, 70, 1030, 4, 4, "normal"),
    (2, 33, 1030, 5, 3, "normal"),
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
        return _ties(rng, (n, c, w), dtype)
    if values == "constant":
        return np.full((n, c, w), 0.5, dtype=dtype)
    if values == "distinct":
        return _distinct(rng, (n, c, w), dtype)
    return _normal(rng, (n, c, w), dtype)


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
    dy = _normal(rng, rarg.shape, dtype)
    dx = call(be, "maxpool1d_backward", device(be, dy), device(be, rarg), w)
    return compare("maxpool1d_backward dx", output(be, dx, "dx", x.shape, dtype),
                   ref.maxpool1d_backward(dy, rarg, w), dtype)


def _pool_gradcheck(be, dtype, rng, cfg):
    n, c, w, size, stride, _ = cfg
    x = _pool_x(rng, cfg, dtype)
    dy = _normal(rng, ref.maxpool1d(x, size, stride)[1].shape, dtype)

    def loss(x):
        y, _ = be.maxpool1d(device(be, x), size, stride)
        return float((be.to_host(y) * dy).sum())

    _, arg = be.maxpool1d(device(be, x), size, stride)
    dx = be.to_host(be.maxpool1d_backward(device(be, dy), arg, w))
    return gradcheck(loss, {"x": x}, {"x": dx}, rng)


def maxpool1d_cases(dtype):
    return _layer_op_cases("maxpool1d", dtype, _pool_label, POOL_CONFIGS, POOL_FD_CONFIGS,
                           _pool_forward, _pool_backward, _pool_gradcheck)


# -- global_pool -------------------------------------------------------------------------------

GPOOL_CONFIGS = [(1, 1, 1, "normal"), (2, 3, 7, "normal"), (3, 5, 16, "normal"),
                 (2, 4, 6, "zero-rows"), (2, 3, 8, "ties"), (2, 3, 5, "negative"),
                 (3, 70, 1100, "normal")]
GPOOL_FD_CONFIGS = [(2, 3, 7, "distinct"), (1, 4, 5, "distinct")]


def _gpool_label(cfg):
    n, c, w, values = cfg
    tail = "" if values in ("normal", "distinct") else f"-{values}"
    return f"N{n}C{c}W{w}{tail}"


def _gpool_x(rng, cfg, dtype):
    n, c, w, values = cfg
    if values == "ties":
        return _ties(rng, (n, c, w), dtype)
    if values == "distinct":
        return _distinct(rng, (n, c, w), dtype)
    x = _normal(rng, (n, c, w), dtype)
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
    dy = _normal(rng, ry.shape, dtype)
    dx = call(be, "global_pool_backward", device(be, x), device(be, y), device(be, rarg),
              device(be, dy))
    return compare("global_pool_backward dx", output(be, dx, "dx", x.shape, dtype),
                   ref.global_pool_backward(x, y, rarg, dy), dtype)


def _gpool_gradcheck(be, dtype, rng, cfg):
    x = _gpool_x(rng, cfg, dtype)
    dy = _normal(rng, (x.shape[0], 3 * x.shape[1]), dtype)

    def loss(x):
        y, _ = be.global_pool(device(be, x))
        return float((be.to_host(y) * dy).sum())

    xd = device(be, x)
    y, arg = be.global_pool(xd)
    dx = be.to_host(be.global_pool_backward(xd, y, arg, device(be, dy)))
    return gradcheck(loss, {"x": x}, {"x": dx}, rng)


def global_pool_cases(dtype):
    return _layer_op_cases("global_pool", dtype, _gpool_label, GPOOL_CONFIGS, GPOOL_FD_CONFIGS,
                           _gpool_forward, _gpool_backward, _gpool_gradcheck)


# -- dense -------------------------------------------------------------------------------------

DENSE_SHAPES = [(1, 1, 1), (1, 5, 3), (4, 7, 2), (8, 32, 10), (70, 300, 130)]
DENSE_FD_SHAPES = [(1, 5, 3), (4, 7, 2)]


def _dense_inputs(rng, s, dtype):
    n, i, o = s
    return (_normal(rng, (n, i), dtype), _normal(rng, (i, o), dtype, 0.5),
            _normal(rng, (o,), dtype), _normal(rng, (n, o), dtype))


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
    return _layer_op_cases("dense", dtype, lambda s: "N{}I{}O{}".format(*s), DENSE_SHAPES,
                           DENSE_FD_SHAPES, _dense_forward, _dense_backward, _dense_gradcheck)


# -- activation --------------------------------------------------------------------------------

LARGE = np.array([[-1000.0, -100.0, -40.0, -20.0, -1.0, -0.0, 0.0, 1.0, 20.0, 40.0, 100.0, 1000.0]])
ACT_KINDS = [(k, 0.01) for k in ACTIVATIONS] + [("leaky_relu", 0.2)]


def _act_x(rng, values, dtype):
    if values == "2d":
        return _normal(rng, (4, 6), dtype, 2.0)
    if values == "3d":
        return _normal(rng, (2, 3, 5), dtype, 2.0)
    if values == "large":
        return LARGE.astype(dtype)
    if values == "big":
        return _normal(rng, (3, 70, 1100), dtype, 3.0)
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
    dy = _normal(rng, x.shape, dtype)
    dx = call(be, "activation_backward", kind, device(be, x), device(be, y), device(be, dy), slope)
    return compare(f"activation_backward({kind}) dx", output(be, dx, "dx", x.shape, dtype),
                   ref.activation_backward(kind, x, y, dy, slope), dtype)


def _act_gradcheck(be, dtype, rng, kind, slope, values):
    x = _act_x(rng, values, dtype)
    dy = _normal(rng, x.shape, dtype)

    def loss(x):
        return float((be.to_host(be.activation(kind, device(be, x), slope)) * dy).sum())

    xd = device(be, x)
    y = be.activation(kind, xd, slope)
    dx = be.to_host(be.activation_backward(kind, xd, y, device(be, dy), slope))
    return gradcheck(loss, {"x": x}, {"x": dx}, rng)


def activation_cases(dtype):
    out = []
    for kind, slope in ACT_KINDS:
        for values in ("2d", "3d", "large", "big"):
            out.append(Case("activation", dtype, "forward", _act_label(kind, slope, values),
                            functools.partial(_act_forward, kind=kind, slope=slope, values=values)))
            out.append(Case("activation", dtype, "backward", _act_label(kind, slope, values),
                            functools.partial(_act_backward, kind=kind, slope=slope, values=values)))
        if dtype == "float64":
            out.append(Case("activation", dtype, "gradcheck", _act_label(kind, slope, "smooth"),
                            functools.partial(_act_gradcheck, kind=kind, slope=slope,
                                              values="smooth")))
    return out


# -- softmax -----------------------------------------------------------------------------------

HUGE = np.array([[1e4, 0.0, -1e4], [1e4, 1e4 - 1, 1e4 - 2], [-1e4, -1e4, -1e4 + 5],
                 [-1e4, -1e4, -1e4], [0.0, 0.0, 0.0]])
SOFTMAX_CONFIGS = ["N1K1", "N1K3", "N4K10", "huge-logits", "N300K10", "N5K1100"]
SOFTMAX_FD_CONFIGS = ["N1K3", "N4K10"]


def _logits(rng, cfg, dtype):
    if cfg == "huge-logits":
        return HUGE.astype(dtype)
    n, k = (int(v) for v in cfg[1:].split("K"))
    return _normal(rng, (n, k), dtype, 3.0)


def _softmax_forward(be, dtype, rng, cfg):
    z = _logits(rng, cfg, dtype)
    p = call(be, "softmax", device(be, z))
    return compare("softmax probs", output(be, p, "softmax probs", z.shape, dtype),
                   ref.softmax(z), dtype)


def _xent_forward(be, dtype, rng, cfg):
    z = _logits(rng, cfg, dtype)
    labels = _labels(rng, z.shape[0], z.shape[1])
    if cfg == "huge-logits":
        labels = np.array([2, 0, 1, 0, 2], dtype=np.int32)   # the -1e4 logit of row 0: loss 2e4
    loss, p = unpack(call(be, "softmax_cross_entropy", device(be, z), device(be, labels)), 2,
                     "softmax_cross_entropy")
    rloss, rp = ref.softmax_cross_entropy(z, labels)
    if not isinstance(loss, float):
        raise CheckFailed(f"softmax_cross_entropy loss is {type(loss).__name__}, expected a "
                          f"Python float")
    return max(compare("softmax_cross_entropy loss", np.float64(loss), rloss, dtype),
               compare("softmax_cross_entropy probs", output(be, p, "probs", z.shape, dtype), rp,
                       dtype))


def _xent_backward(be, dtype, rng, cfg):
    z = _logits(rng, cfg, dtype)
    labels = _labels(rng, z.shape[0], z.shape[1])
    probs = ref.softmax(z).astype(dtype)
    g = call(be, "softmax_cross_entropy_backward", device(be, probs), device(be, labels))
    return compare("softmax_cross_entropy_backward", output(be, g, "dlogits", z.shape, dtype),
                   ref.softmax_cross_entropy_backward(probs, labels), dtype)


def _xent_gradcheck(be, dtype, rng, cfg):
    z = _logits(rng, cfg, dtype)
    labels = _labels(rng, z.shape[0], z.shape[1])
    lab = device(be, labels)

    def loss(logits):
        return be.softmax_cross_entropy(device(be, logits), lab)[0]

    _, p = be.softmax_cross_entropy(device(be, z), lab)
    g = be.to_host(be.softmax_cross_entropy_backward(p, lab))
    return gradcheck(loss, {"logits": z}, {"logits": g}, rng)


def softmax_cases(dtype):
    out = [Case("softmax", dtype, "softmax", cfg, functools.partial(_softmax_forward, cfg=cfg))
           for cfg in SOFTMAX_CONFIGS]
    out += [Case("softmax", dtype, "cross-entropy", cfg, functools.partial(_xent_forward, cfg=cfg))
            for cfg in SOFTMAX_CONFIGS]
    out += [Case("softmax", dtype, "backward", cfg, functools.partial(_xent_backward, cfg=cfg))
            for cfg in SOFTMAX_CONFIGS]
    if dtype == "float64":
        out += [Case("softmax", dtype, "gradcheck", cfg, functools.partial(_xent_gradcheck, cfg=cfg))
                for cfg in SOFTMAX_FD_CONFIGS]
    return out


# -- in-place updates ----------------------------------------------------------------------------

def _update(be, dtype, rng, method, shape, hyper):
    """Run an update op on device state; check it changed param/state in place per the formula."""
    names = {"sgd_update": ("param", "velocity"), "adam_update": ("param", "m", "v")}[method]
    host = {"param": _normal(rng, shape, dtype), "grad": _normal(rng, shape, dtype)}
    for name in names[1:]:
        host[name] = _normal(rng, shape, dtype, 0.1)
    if "v" in host:
        host["v"] = np.abs(host["v"])
    dev = {k: device(be, v) for k, v in host.items()}
    grad_before = host["grad"].copy()
    args = [dev[n] for n in names[:1]] + [dev["grad"]] + [dev[n] for n in names[1:]]
    ret = getattr(be, method)(*args, *hyper.values())   # positional, as optimisers call
    if ret is not None:
        raise CheckFailed(f"{method} returned {type(ret).__name__}; it must update in place and "
                          f"return None")
    if not np.array_equal(be.to_host(dev["grad"]), grad_before):
        raise CheckFailed(f"{method} modified its input 'grad'")
    expected = getattr(ref, method)(*(host[n] for n in names[:1]), host["grad"],
                                    *(host[n] for n in names[1:]), **hyper)
    err = 0.0
    for name, want in zip(names, expected):
        got = output(be, dev[name], f"{method} {name}", shape, dtype)
        if np.array_equal(got, host[name]) and not np.array_equal(want, host[name]):
            raise CheckFailed(f"{method} did not change {name!r} in place (it is unchanged)",
                              float("inf"))
        err = max(err, compare(f"{method} {name} (in place)", got, want, dtype))
    return err


SGD_CONFIGS = [((3,), dict(lr=0.1, momentum=0.9, weight_decay=0.0)),
               ((70, 1100), dict(lr=0.01, momentum=0.9, weight_decay=1e-4)),
               ((4, 5), dict(lr=0.05, momentum=0.0, weight_decay=1e-3)),
               ((2, 3, 4), dict(lr=0.01, momentum=0.9, weight_decay=0.1))]
ADAM_CONFIGS = [((3,), dict(step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)),
                ((70, 1100), dict(step=2, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                                  weight_decay=1e-4)),
                ((4, 5), dict(step=7, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8,
                              weight_decay=0.01)),
                ((2, 3, 4), dict(step=3, lr=0.1, beta1=0.8, beta2=0.99, eps=1e-6,
                                 weight_decay=0.0))]


def _hyper_label(shape, hyper):
    return "x".join(map(str, shape)) + "-" + ",".join(f"{k}={v:g}" for k, v in hyper.items())


def sgd_cases(dtype):
    return [Case("sgd_update", dtype, "inplace", _hyper_label(s, h),
                 functools.partial(_update, method="sgd_update", shape=s, hyper=h))
            for s, h in SGD_CONFIGS]


def adam_cases(dtype):
    return [Case("adam_update", dtype, "inplace", _hyper_label(s, h),
                 functools.partial(_update, method="adam_update", shape=s, hyper=h))
            for s, h in ADAM_CONFIGS]


BUILDERS = {"transfer": transfer_cases, "conv1d": conv1d_cases, "maxpool1d": maxpool1d_cases,
            "global_pool": global_pool_cases, "dense": dense_cases,
            "activation": activation_cases, "softmax": softmax_cases,
            "sgd_update": sgd_cases, "adam_update": adam_cases}
assert set(BUILDERS) == {g.name for g in OP_GROUPS}, "every op group needs conformance cases"


def cases_for(group: str, dtype: str) -> list[Case]:
    """The cases of one op group at one dtype (int32 exists for ``transfer`` only)."""
    if dtype == INDEX and group != "transfer":
        return []
    return BUILDERS[group](dtype)
