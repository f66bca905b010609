"""An independent float64 reference for every op of the contract.

Written for clarity, not speed: explicit loops over kernel taps, windows and
rows, straight from the formulas in :mod:`genrecnn.engine.ops`. It deliberately does
not import any backend, so a bug shared by a backend and the reference would
have to be written twice. Every function takes and returns NumPy arrays and
computes in float64; index outputs are int32. The update functions are pure:
they return the new state instead of changing their arguments.
"""
from __future__ import annotations

import math

import numpy as np


def _f64(*arrays):
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


# -- convolution ----------------------------------------------------------------------------

def conv1d(x, w, b):
    """y[n, f, t] = b[f] + sum_{c, k} w[f, c, k] * x[n, c, t + k]."""
    x, w, b = _f64(x, w, b)
    n, c, width = x.shape
    f, _, k = w.shape
    wo = width - k + 1
    y = np.zeros((n, f, wo)) + b[None, :, None]
    for tap in range(k):
        # sum over channels of w[f, c, tap] * x[n, c, t + tap]
        y += np.einsum("fc,nct->nft", w[:, :, tap], x[:, :, tap:tap + wo])
    return y


def conv1d_backward(x, w, dy):
    """(dx, dw, db) of :func:`conv1d` for upstream gradient dy."""
    x, w, dy = _f64(x, w, dy)
    n, c, width = x.shape
    f, _, k = w.shape
    wo = width - k + 1
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for tap in range(k):
        # x[n, c, t + tap] fed y[n, f, t] with weight w[f, c, tap]
        dx[:, :, tap:tap + wo] += np.einsum("fc,nft->nct", w[:, :, tap], dy)
        dw[:, :, tap] = np.einsum("nft,nct->fc", dy, x[:, :, tap:tap + wo])
    db = dy.sum(axis=(0, 2))
    return dx, dw, db


# -- max pooling ------------------------------------------------------------------------------

def maxpool1d(x, size, stride):
    """Window maxima and the absolute index of the first maximum of each window.

    NaN counts as the maximum: NumPy's ``max`` returns NaN for a window holding one
    and its ``argmax`` the window's first NaN, exactly the contract's rule.
    """
    (x,) = _f64(x)
    n, c, width = x.shape
    wo = (width - size) // stride + 1
    y = np.zeros((n, c, wo))
    arg = np.zeros((n, c, wo), dtype=np.int32)
    for j in range(wo):
        start = j * stride
        window = x[:, :, start:start + size]
        local = window.argmax(axis=2)                          # first maximum (or NaN)
        arg[:, :, j] = start + local
        y[:, :, j] = window.max(axis=2)
    return y, arg


def maxpool1d_backward(dy, argmax, width):
    """Route each window's gradient to its maximum, summing where windows share one."""
    (dy,) = _f64(dy)
    n, c, wo = dy.shape
    dx = np.zeros((n, c, width))
    rows, chans = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for j in range(wo):
        # within one window index every (n, c) is a different row, so += cannot collide;
        # windows that share a maximum add up over j
        dx[rows, chans, argmax[:, :, j]] += dy[:, :, j]
    return dx


# -- global pooling ---------------------------------------------------------------------------

def global_pool(x):
    """[mean | max | L2] over time, and the first-maximum index of every row (NaN
    counting as the maximum, as in :func:`maxpool1d`)."""
    (x,) = _f64(x)
    c = x.shape[1]
    y = np.zeros((x.shape[0], 3 * c))
    y[:, :c] = x.sum(axis=2) / x.shape[2]
    y[:, c:2 * c] = x.max(axis=2)
    y[:, 2 * c:] = np.sqrt((x ** 2).sum(axis=2))
    return y, x.argmax(axis=2).astype(np.int32)


def global_pool_backward(x, y, argmax, dy):
    """dx = dmean / W + onehot(argmax) dmax + x / l2 dl2 (last term 0 where l2 == 0)."""
    x, y, dy = _f64(x, y, dy)
    n, c, width = x.shape
    dx = np.zeros_like(x)
    for i in range(n):
        for ch in range(c):
            dx[i, ch, :] += dy[i, ch] / width
            dx[i, ch, argmax[i, ch]] += dy[i, c + ch]
            l2 = y[i, 2 * c + ch]
            if l2 > 0:
                dx[i, ch, :] += x[i, ch, :] / l2 * dy[i, 2 * c + ch]
    return dx


# -- dense ------------------------------------------------------------------------------------

def dense(x, w, b):
    x, w, b = _f64(x, w, b)
    return x @ w + b


def dense_backward(x, w, dy):
    x, w, dy = _f64(x, w, dy)
    return dy @ w.T, x.T @ dy, dy.sum(axis=0)


# -- activations -------------------------------------------------------------------------------

def _sigmoid_scalar(v: float) -> float:
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def activation(kind, x, slope=0.01):
    (x,) = _f64(x)
    if kind == "relu":
        return np.where((x > 0) | np.isnan(x), x, 0.0)         # NaN stays NaN
    if kind == "leaky_relu":
        return np.where(x > 0, x, slope * x)
    if kind == "sigmoid":
        with np.errstate(invalid="ignore"):             # NaN in, NaN out
            return np.vectorize(_sigmoid_scalar, otypes=[np.float64])(x)
    if kind == "tanh":
        return np.tanh(x)
    raise ValueError(f"unknown activation {kind!r}")


def activation_backward(kind, x, y, dy, slope=0.01):
    x, y, dy = _f64(x, y, dy)
    if kind == "relu":
        return np.where(x > 0, dy, 0.0)
    if kind == "leaky_relu":
        return np.where(x > 0, dy, slope * dy)
    if kind == "sigmoid":
        return dy * y * (1.0 - y)
    if kind == "tanh":
        return dy * (1.0 - y * y)
    raise ValueError(f"unknown activation {kind!r}")


# -- softmax and loss ---------------------------------------------------------------------------

def log_softmax(logits):
    (z,) = _f64(logits)
    out = np.zeros_like(z)
    for i, row in enumerate(z):
        shifted = row - row.max()
        out[i] = shifted - math.log(np.exp(shifted).sum())
    return out


def softmax(logits):
    return np.exp(log_softmax(logits))


def softmax_cross_entropy(logits, labels):
    logp = log_softmax(logits)
    picked = [logp[i, int(lab)] for i, lab in enumerate(labels)]
    return -float(np.mean(picked)), np.exp(logp)


def softmax_cross_entropy_backward(probs, labels):
    (g,) = _f64(probs)
    g = g.copy()
    for i, lab in enumerate(labels):
        g[i, int(lab)] -= 1.0
    return g / len(labels)


# -- updates (pure) -----------------------------------------------------------------------------

def sgd_update(param, grad, velocity, lr, momentum, weight_decay):
    """-> (new param, new velocity)."""
    param, grad, velocity = _f64(param, grad, velocity)
    velocity = momentum * velocity - lr * (grad + weight_decay * param)
    return param + velocity, velocity


def adam_update(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay,
                decoupled_weight_decay=0.0):
    """-> (new param, new m, new v)."""
    param, grad, m, v = _f64(param, grad, m, v)
    g = grad + weight_decay * param
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g ** 2
    mhat = m / (1 - beta1 ** step)
    vhat = v / (1 - beta2 ** step)
    return param - lr * (mhat / (np.sqrt(vhat) + eps) + decoupled_weight_decay * param), m, v
