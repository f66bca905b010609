"""NumPy implementation of the op contract (see :mod:`genrecnn.engine.ops`).

Every op is vectorised over batch and time: the forward convolution is an
im2col followed by one batched GEMM, its gradients are one batched GEMM per
tap on strided views, pooling works on strided window views. The only Python
loops run over the taps of a kernel or a pooling window.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from genrecnn.engine.ops import Backend

from .parallel import over_batch


def _im2col(x: np.ndarray, k: int) -> np.ndarray:
    """x[N, C, W] -> cols[N, C*K, Wo] with cols[n, c*K + j, t] = x[n, c, t + j]."""
    n, c, w = x.shape
    wo = w - k + 1
    win = sliding_window_view(x, k, axis=2)           # [N, C, Wo, K] view
    cols = np.empty((n, c, k, wo), dtype=x.dtype)

    def fill(s):
        for j in range(k):                            # K taps, each a contiguous copy
            cols[s, :, j, :] = win[s, :, :, j]
    over_batch(fill, n, cols.size)
    return cols.reshape(n, c * k, wo)


def _conv_param_grads(x: np.ndarray, w: np.ndarray, dy: np.ndarray):
    """(dw, db) of the convolution: one batched GEMM per tap straight from
    strided views of x, no im2col copy."""
    k = w.shape[2]
    wo = dy.shape[2]
    dw = np.empty_like(w)
    for j in range(k):
        dw[:, :, j] = np.matmul(dy, x[:, :, j:j + wo].transpose(0, 2, 1)).sum(axis=0)
    return dw, dy.sum(axis=(0, 2))


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
    local[...] = idx


class NumpyBackend(Backend):
    name = "numpy"
    device = "cpu"

    def from_host(self, a):
        return np.array(a, copy=True, order="C")

    def to_host(self, x):
        return np.array(x, copy=True, order="C")

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def adopt(self, x, source):
        # Any CPU backend whose arrays are NumPy arrays can hand them over as they are.
        if isinstance(x, np.ndarray):
            return x
        return super().adopt(x, source)

    # -- convolution ---------------------------------------------------------------------

    def conv1d(self, x, w, b):
        f, c, k = w.shape
        cols = _im2col(x, k)
        y = np.matmul(w.reshape(f, c * k), cols)         # [N, F, Wo]
        y += b[None, :, None]
        return y

    def conv1d_backward(self, x, w, dy):
        dw, db = _conv_param_grads(x, w, dy)
        f, c, k = w.shape
        wo = dy.shape[2]
        taps = np.ascontiguousarray(w.transpose(2, 1, 0))     # [K, C, F]
        dx = np.zeros_like(x)
        part = np.empty((x.shape[0], c, wo), dtype=x.dtype)
        for j in range(k):                                   # dx[:, :, t + j] += w_j^T dy[:, :, t]
            np.matmul(taps[j], dy, out=part)
            dx[:, :, j:j + wo] += part
        return dx, dw, db

    def conv1d_backward_params(self, x, w, dy):
        return _conv_param_grads(x, w, dy)

    # -- pooling -------------------------------------------------------------------------

    def maxpool1d(self, x, size, stride):
        win = _pool_windows(x, size, stride)
        y = np.empty(win.shape[:3], dtype=x.dtype)
        local = np.empty(win.shape[:3], dtype=np.int32)
        over_batch(lambda s: _running_max(win[s], y[s], local[s]), x.shape[0], x.size)
        local += np.arange(win.shape[2], dtype=np.int32) * np.int32(stride)
        return y, local

    def maxpool1d_backward(self, dy, argmax, width):
        n, c, wo = dy.shape
        distinct = wo <= 1 or (argmax.size and np.all(argmax[:, :, 1:] > argmax[:, :, :-1]))
        if distinct:
            # Maxima are distinct positions in every row (always so without overlap): a scatter.
            dx = np.zeros((n, c, width), dtype=dy.dtype)
            np.put_along_axis(dx, argmax.astype(np.intp), dy, axis=2)
            return dx
        # Overlapping windows may share a maximum: sum their gradients.
        rows = np.arange(n * c, dtype=np.intp).reshape(n, c, 1) * width
        flat = (rows + argmax).ravel()
        dx = np.bincount(flat, weights=dy.ravel(), minlength=n * c * width)
        return dx.astype(dy.dtype, copy=False).reshape(n, c, width)

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

    def dense(self, x, w, b):
        y = x @ w
        y += b
        return y

    def dense_backward(self, x, w, dy):
        return dy @ w.T, x.T @ dy, dy.sum(axis=0)

    # -- activations -----------------------------------------------------------------------

    def activation(self, kind, x, slope=0.01):
        if kind == "relu":
            y = np.empty_like(x)
            over_batch(lambda s: np.maximum(x[s], 0, out=y[s]), x.shape[0], x.size)
            return y
        if kind == "leaky_relu":
            return np.where(x > 0, x, x * x.dtype.type(slope))
        if kind == "sigmoid":
            e = np.exp(-np.abs(x))
            return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        if kind == "tanh":
            return np.tanh(x)
        raise ValueError(f"unknown activation {kind!r}")

    def activation_backward(self, kind, x, y, dy, slope=0.01):
        if kind == "relu":
            dx = np.empty_like(dy)
            over_batch(lambda s: np.multiply(dy[s], x[s] > 0, out=dx[s]), x.shape[0], x.size)
            return dx
        if kind == "leaky_relu":
            return dy * np.where(x > 0, x.dtype.type(1), x.dtype.type(slope))
        if kind == "sigmoid":
            return dy * y * (1 - y)
        if kind == "tanh":
            return dy * (1 - y * y)
        raise ValueError(f"unknown activation {kind!r}")

    # -- output ----------------------------------------------------------------------------

    @staticmethod
    def _log_softmax(logits):
        z = logits - logits.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def softmax(self, logits):
        return np.exp(self._log_softmax(logits))

    def softmax_cross_entropy(self, logits, labels):
        logp = self._log_softmax(logits)
        picked = np.take_along_axis(logp, labels.astype(np.intp)[:, None], axis=1)
        return float(-picked.mean()), np.exp(logp)

    def softmax_cross_entropy_backward(self, probs, labels):
        g = probs.copy()
        g[np.arange(len(labels)), labels] -= 1
        g /= len(labels)
        return g

    # -- updates ---------------------------------------------------------------------------

    def sgd_update(self, param, grad, velocity, lr, momentum, weight_decay):
        velocity *= momentum
        velocity -= lr * grad
        if weight_decay:
            velocity -= (lr * weight_decay) * param
        param += velocity

    def adam_update(self, param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay,
                    decoupled_weight_decay=0.0):
        g = grad + weight_decay * param if weight_decay else grad
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        mhat = m / (1 - beta1 ** step)
        vhat = v / (1 - beta2 ** step)
        if decoupled_weight_decay:
            param *= 1 - lr * decoupled_weight_decay
        param -= lr * mhat / (np.sqrt(vhat) + eps)
