"""NumPy implementation of the op contract (see :mod:`genrecnn.ops`).

Every op is vectorised over batch and time: the convolution is an im2col
followed by one batched GEMM, pooling works on strided window views. The only
Python loops run over the K taps of a kernel.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from genrecnn.ops import Backend


def _im2col(x: np.ndarray, k: int) -> np.ndarray:
    """x[N, C, W] -> cols[N, C*K, Wo] with cols[n, c*K + j, t] = x[n, c, t + j]."""
    n, c, w = x.shape
    wo = w - k + 1
    win = sliding_window_view(x, k, axis=2)           # [N, C, Wo, K] view
    cols = np.empty((n, c, k, wo), dtype=x.dtype)
    for j in range(k):                                # K taps, each a contiguous copy
        cols[:, :, j, :] = win[:, :, :, j]
    return cols.reshape(n, c * k, wo)


def _pool_windows(x: np.ndarray, size: int, stride: int) -> np.ndarray:
    """x[N, C, W] -> view [N, C, Wo, size] of the pooling windows."""
    return sliding_window_view(x, size, axis=2)[:, :, ::stride, :]


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
        f, c, k = w.shape
        n, _, width = x.shape
        wo = width - k + 1
        cols = _im2col(x, k)
        db = dy.sum(axis=(0, 2))
        dw = np.matmul(dy, cols.transpose(0, 2, 1)).sum(axis=0).reshape(f, c, k)
        dcols = np.matmul(w.reshape(f, c * k).T, dy).reshape(n, c, k, wo)
        dx = np.zeros_like(x)
        for j in range(k):
            dx[:, :, j:j + wo] += dcols[:, :, j, :]
        return dx, dw, db

    # -- pooling -------------------------------------------------------------------------

    def maxpool1d(self, x, size, stride):
        win = _pool_windows(x, size, stride)
        local = win.argmax(axis=3)
        y = np.take_along_axis(win, local[..., None], axis=3)[..., 0]
        offsets = np.arange(win.shape[2]) * stride
        return np.ascontiguousarray(y), (local + offsets).astype(np.int32)

    def maxpool1d_backward(self, dy, argmax, width):
        n, c, wo = dy.shape
        if wo > 1 and argmax.size and np.all(np.diff(argmax, axis=2) > 0):
            # Maxima are distinct positions in every row: a plain scatter.
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
            return np.maximum(x, 0)
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
            return dy * (x > 0)
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

    def adam_update(self, param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay):
        g = grad + weight_decay * param if weight_decay else grad
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        mhat = m / (1 - beta1 ** step)
        vhat = v / (1 - beta2 ** step)
        param -= lr * mhat / (np.sqrt(vhat) + eps)
