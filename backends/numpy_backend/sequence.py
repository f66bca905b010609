"""NumPy: the contract's sequence ops (:mod:`genrecnn.engine.ops.sequence`).

Every op is vectorised over batch and time, and the large ones run on all cores
(:mod:`.parallel`): the convolution is a few GEMMs per example (:mod:`.conv`);
elementwise passes and pooling work on cache-sized blocks of the flattened arrays or of
rows of windows, so that the several ufuncs of a pass find their operands in cache.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from genrecnn.engine.ops import round_operand

from . import conv
from .parallel import BLOCK, blockwise, over_blocks

POOL_BLOCK = 1 << 18     # input elements per block of pooling windows


def _pool_windows(x: np.ndarray, size: int, stride: int) -> np.ndarray:
    """x[N, C, W] -> view [N, C, Wo, size] of the pooling windows."""
    return sliding_window_view(x, size, axis=2)[:, :, ::stride, :]


def _running_max(win: np.ndarray, y: np.ndarray, local: np.ndarray) -> None:
    """Max and first arg-max over the last axis of ``win``, into ``y`` and ``local``.

    One strided pass per tap over all windows at once (far faster than
    ``argmax`` along a short axis); the arg-max is kept with arithmetic on a
    narrow integer, since masked assignment costs several times as much.
    """
    size = win.shape[-1]
    idx = np.zeros(y.shape, dtype=np.int8 if size <= 127 else np.int32)
    step = np.empty_like(idx)
    later = np.empty(y.shape, dtype=bool)
    y[...] = win[..., 0]
    for j in range(1, size):
        tap = win[..., j]
        np.greater(tap, y, out=later)                 # strict: the first maximum wins
        np.subtract(j, idx, out=step, dtype=idx.dtype)
        step *= later
        idx += step                                   # idx = j where later, else unchanged
        np.maximum(y, tap, out=y)
    nan = np.isnan(y)                                 # NaN is the maximum: its first position
    if nan.any():
        idx[nan] = np.isnan(win[nan]).argmax(axis=-1)
    local[...] = idx


def _fill(value: float, x: np.ndarray) -> np.ndarray:
    """A block of ``value`` to compare x's blocks with: NumPy's maximum of an
    array and a scalar takes twice as long as that of two arrays."""
    return np.full(min(BLOCK, x.size), value, dtype=x.dtype)


def _leaky_relu(x: np.ndarray, slope: float) -> np.ndarray:
    """x if x > 0 else slope * x, as max(x, slope * x) (min for slope > 1): two
    branch-free ufuncs per block, where ``np.where`` mispredicts a branch per element."""
    if slope == 0:                    # 0 * inf is NaN, so the formula needs slope != 0
        return np.where(x > 0, x, x * x.dtype.type(slope))
    s = x.dtype.type(slope)
    pick = np.maximum if slope < 1 else np.minimum

    def fn(xb, yb):
        np.multiply(xb, s, out=yb)
        pick(xb, yb, out=yb)
    return blockwise(x, fn)


def _gate_backward(x: np.ndarray, dy: np.ndarray, slope: float) -> np.ndarray:
    """dy * (1 if x > 0 else slope), relu's (slope 0) and leaky ReLU's gradient.

    For 0 <= slope <= 1 the factor is max([x > 0], slope), exact and branch-free.
    """
    if not 0 <= slope <= 1:
        return dy * np.where(x > 0, x.dtype.type(1), x.dtype.type(slope))
    floor = _fill(slope, x)

    def fn(xb, dxb, dyb):
        np.greater(xb, 0, out=dxb)            # 1.0 or 0.0 (0.0 for NaN)
        if slope:
            np.maximum(dxb, floor[:dxb.size], out=dxb)
        dxb *= dyb
    return blockwise(x, fn, dy)


def rounded(precision: str, *operands: np.ndarray) -> tuple[np.ndarray, ...]:
    """The operands of a product rounded to ``precision`` (the arrays themselves for
    fp32): the products then compute as in fp32, which emulates tensor cores exactly
    up to the order of the float32 sums."""
    return tuple(round_operand(a, precision) for a in operands)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax, max-shifted so that huge logits never overflow."""
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class NumpySequenceOps:
    """conv1d, maxpool1d, global_pool, dense, activation, softmax for :class:`.NumpyBackend`."""

    # -- convolution ---------------------------------------------------------------------

    def conv1d(self, x, w, b, precision="fp32"):
        return conv.forward(*rounded(precision, x, w), b)

    def conv1d_backward(self, x, w, dy, precision="fp32"):
        return conv.backward(*rounded(precision, x, w, dy))

    def conv1d_backward_params(self, x, w, dy, precision="fp32"):
        return conv.backward(*rounded(precision, x, w, dy), need_dx=False)[1:]

    # -- pooling -------------------------------------------------------------------------

    def maxpool1d(self, x, size, stride):
        n, c, width = x.shape
        win = _pool_windows(x.reshape(n * c, 1, width), size, stride)   # rows of windows
        wo = win.shape[2]
        y = np.empty((n * c, 1, wo), dtype=x.dtype)
        arg = np.empty((n * c, 1, wo), dtype=np.int32)
        start = np.arange(wo, dtype=np.int32) * np.int32(stride)

        def rows(r):
            _running_max(win[r], y[r], arg[r])
            arg[r] += start
        over_blocks(rows, n * c, max(1, POOL_BLOCK // (wo * size)), x.size)
        return y.reshape(n, c, wo), arg.reshape(n, c, wo)

    def maxpool1d_backward(self, dy, argmax, width):
        n, c, wo = dy.shape
        dx = np.zeros((n * c, width), dtype=dy.dtype)
        flat, arg, grad = dx.reshape(-1), argmax.reshape(-1, wo), dy.reshape(-1, wo)

        def rows(r):
            at = arg[r] + (np.arange(r.start, r.stop, dtype=np.intp) * width)[:, None]
            # a scatter-add: overlapping windows that share a maximum sum their gradients
            np.add.at(flat, at.ravel(), grad[r].ravel())
        over_blocks(rows, n * c, max(1, BLOCK // max(1, wo)), dx.size)
        return dx.reshape(n, c, width)

    def global_pool(self, x):
        argmax = x.argmax(axis=2)
        mx = np.take_along_axis(x, argmax[..., None], axis=2)[..., 0]
        l2 = np.sqrt(np.einsum("ncw,ncw->nc", x, x))
        return np.concatenate([x.mean(axis=2), mx, l2], axis=1), argmax.astype(np.int32)

    def global_pool_backward(self, x, y, argmax, dy):
        c, width = x.shape[1], x.shape[2]
        dmean, dmax, dl2 = dy[:, :c], dy[:, c:2 * c], dy[:, 2 * c:]
        l2 = y[:, 2 * c:]
        scale = np.divide(dl2, l2, out=np.zeros_like(l2), where=l2 > 0)
        dx = x * scale[..., None]
        dx += (dmean / width)[..., None]
        idx = argmax.astype(np.intp)[..., None]
        np.put_along_axis(dx, idx, np.take_along_axis(dx, idx, axis=2) + dmax[..., None], axis=2)
        return dx

    # -- dense ---------------------------------------------------------------------------

    def dense(self, x, w, b, precision="fp32"):
        x, w = rounded(precision, x, w)
        y = x @ w
        y += b
        return y

    def dense_backward(self, x, w, dy, precision="fp32"):
        x, w, dy = rounded(precision, x, w, dy)
        return dy @ w.T, x.T @ dy, dy.sum(axis=0)

    # -- activations -----------------------------------------------------------------------

    def activation(self, kind, x, slope=0.01):
        if kind == "relu":
            zero = _fill(0, x)
            return blockwise(x, lambda xb, yb: np.maximum(xb, zero[:xb.size], out=yb))
        if kind == "leaky_relu":
            return _leaky_relu(x, slope)
        if kind == "sigmoid":
            e = np.exp(-np.abs(x))
            return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        if kind == "tanh":
            return np.tanh(x)
        raise ValueError(f"unknown activation {kind!r}")

    def activation_backward(self, kind, x, y, dy, slope=0.01):
        if kind in ("relu", "leaky_relu"):
            return _gate_backward(x, dy, 0.0 if kind == "relu" else slope)
        if kind == "sigmoid":
            return dy * y * (1 - y)
        if kind == "tanh":
            return dy * (1 - y * y)
        raise ValueError(f"unknown activation {kind!r}")

    # -- output ----------------------------------------------------------------------------

    def softmax(self, logits):
        return np.exp(log_softmax(logits))

    def softmax_cross_entropy(self, logits, labels):
        logp = log_softmax(logits)
        picked = np.take_along_axis(logp, labels.astype(np.intp)[:, None], axis=1)
        return float(-picked.mean()), np.exp(logp)

    def softmax_cross_entropy_backward(self, probs, labels):
        g = probs.copy()
        g[np.arange(len(labels)), labels] -= 1
        g /= len(labels)
        return g
