"""An independent float64 reference for the contract's 2-D map and training ops.

Written for clarity, not speed, straight from the formulas in
:mod:`genrecnn.engine.ops.maps` and :mod:`genrecnn.engine.ops.training`: loops
over kernel taps, windows, channels and examples. Like :mod:`.reference` it
imports no backend (nor the contract's own hash helper: the dropout hash is
written again here), so a bug shared with a backend would have to be written
twice. Functions take and return NumPy arrays, compute in float64 and return
int32 indices; ops that work in place in the contract return their new values
here instead.
"""
from __future__ import annotations

import numpy as np

from genrecnn.conformance.reference import _f64, log_softmax


def _out_len(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


# -- 2-D convolution ----------------------------------------------------------------------------

def _padded(x, ph, pw):
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + w] = x
    return xp


def _tap(xp, u, v, sh, sw, ho, wo):
    """xp[n, c, i sh + u, j sw + v] for every output position (i, j): [N, C, Ho, Wo]."""
    return xp[:, :, u:u + sh * (ho - 1) + 1:sh, v:v + sw * (wo - 1) + 1:sw]


def conv2d(x, w, b, stride, padding):
    """y[n, f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] * xp[n, c, i sh + u, j sw + v]."""
    x, w, b = _f64(x, w, b)
    (sh, sw), (ph, pw) = stride, padding
    f, _, kh, kw = w.shape
    ho, wo = _out_len(x.shape[2], kh, sh, ph), _out_len(x.shape[3], kw, sw, pw)
    xp = _padded(x, ph, pw)
    y = np.zeros((x.shape[0], f, ho, wo)) + b[None, :, None, None]
    for u in range(kh):
        for v in range(kw):
            y += np.einsum("fc,nchw->nfhw", w[:, :, u, v], _tap(xp, u, v, sh, sw, ho, wo))
    return y


def conv2d_backward(x, w, dy, stride, padding):
    """(dx, dw, db) of :func:`conv2d`: every tap's share, gathered back onto padded x."""
    x, w, dy = _f64(x, w, dy)
    (sh, sw), (ph, pw) = stride, padding
    _, _, h, wd = x.shape
    _, _, kh, kw = w.shape
    ho, wo = dy.shape[2:]
    xp = _padded(x, ph, pw)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for u in range(kh):
        for v in range(kw):
            dw[:, :, u, v] = np.einsum("nfhw,nchw->fc", dy, _tap(xp, u, v, sh, sw, ho, wo))
            _tap(dxp, u, v, sh, sw, ho, wo)[...] += np.einsum("fc,nfhw->nchw", w[:, :, u, v], dy)
    return dxp[:, :, ph:ph + h, pw:pw + wd], dw, dy.sum(axis=(0, 2, 3))


# -- 2-D max pooling ----------------------------------------------------------------------------

def maxpool2d(x, size, stride):
    """Window maxima and the in-plane index h * W + w of each window's first maximum
    in row-major order, a NaN counting as the maximum."""
    (x,) = _f64(x)
    n, c, h, wd = x.shape
    (kh, kw), (sh, sw) = size, stride
    ho, wo = _out_len(h, kh, sh, 0), _out_len(wd, kw, sw, 0)
    y = np.zeros((n, c, ho, wo))
    arg = np.zeros((n, c, ho, wo), dtype=np.int32)
    for i in range(ho):
        for j in range(wo):
            window = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(n, c, kh * kw)
            nan = np.isnan(window)
            # the first NaN if there is one, else the first maximum (argmax takes the first)
            local = np.where(nan.any(axis=2), nan.argmax(axis=2), window.argmax(axis=2))
            arg[:, :, i, j] = (i * sh + local // kw) * wd + (j * sw + local % kw)
            y[:, :, i, j] = np.take_along_axis(window, local[..., None], axis=2)[..., 0]
    return y, arg


def maxpool2d_backward(dy, argmax, height, width):
    """dy routed to each window's maximum, summed where windows share one."""
    (dy,) = _f64(dy)
    n, c = dy.shape[:2]
    dx = np.zeros((n, c, height * width))
    for a in range(n):
        for ch in range(c):
            np.add.at(dx[a, ch], argmax[a, ch].ravel(), dy[a, ch].ravel())
    return dx.reshape(n, c, height, width)


# -- batch normalisation --------------------------------------------------------------------------

def _channel(x, ch):
    """All m values of channel ``ch`` of x[N, C, ...]."""
    return x[:, ch].ravel()


def _bcast(v, ndim):
    """A per-channel vector shaped to broadcast against x[N, C, ...]."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batchnorm_train(x, gamma, beta, eps):
    """-> (y, mean, invstd) with the biased variance of each channel's values."""
    x, gamma, beta = _f64(x, gamma, beta)
    c = x.shape[1]
    mean, invstd = np.zeros(c), np.zeros(c)
    for ch in range(c):
        vals = _channel(x, ch)
        mean[ch] = vals.sum() / vals.size
        var = ((vals - mean[ch]) ** 2).sum() / vals.size
        invstd[ch] = 1.0 / np.sqrt(var + eps)
    y = (x - _bcast(mean, x.ndim)) * _bcast(invstd, x.ndim) * _bcast(gamma, x.ndim)
    return y + _bcast(beta, x.ndim), mean, invstd


def batchnorm_running_update(running_mean, running_var, mean, invstd, count, momentum, eps):
    """-> (new running_mean, new running_var); the batch variance made unbiased."""
    running_mean, running_var, mean, invstd = _f64(running_mean, running_var, mean, invstd)
    var = 1.0 / invstd ** 2 - eps
    if count > 1:
        var = var * count / (count - 1)
    return ((1 - momentum) * running_mean + momentum * mean,
            (1 - momentum) * running_var + momentum * var)


def batchnorm_infer(x, gamma, beta, running_mean, running_var, eps):
    x, gamma, beta, running_mean, running_var = _f64(x, gamma, beta, running_mean, running_var)
    d = x.ndim
    return ((x - _bcast(running_mean, d)) / np.sqrt(_bcast(running_var, d) + eps)
            * _bcast(gamma, d) + _bcast(beta, d))


def batchnorm_backward(x, gamma, mean, invstd, dy):
    """-> (dx, dgamma, dbeta), channel by channel."""
    x, gamma, mean, invstd, dy = _f64(x, gamma, mean, invstd, dy)
    c = x.shape[1]
    dx = np.zeros_like(x)
    dgamma, dbeta = np.zeros(c), np.zeros(c)
    for ch in range(c):
        xhat = (x[:, ch] - mean[ch]) * invstd[ch]
        g = dy[:, ch]
        m = g.size
        dbeta[ch] = g.sum()
        dgamma[ch] = (g * xhat).sum()
        dx[:, ch] = gamma[ch] * invstd[ch] / m * (m * g - dbeta[ch] - xhat * dgamma[ch])
    return dx, dgamma, dbeta


# -- dropout ----------------------------------------------------------------------------------

_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _hash32(x):
    """lowbias32 on Python ints, or on uint64 arrays of 32-bit values (products fit in
    64 bits and are masked back to 32 after each step)."""
    x = x & _M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    x ^= x >> 16
    return x


def dropout_bits(size, key):
    """The 24-bit draw ``h >> 8`` of every element 0..size-1 for ``key`` (seed, offset)."""
    seed, offset = (int(v) & _M32 for v in np.asarray(key).ravel())
    k = _hash32((seed * _GOLDEN + offset) & _M32)          # on Python integers
    i = np.arange(size, dtype=np.uint64)
    return _hash32((i * np.uint64(_GOLDEN) + np.uint64(k)) & np.uint64(_M32)) >> np.uint64(8)


def dropout_keep(shape, rate, key):
    """The mask: element i is kept iff its draw / 2^24 >= rate (exact float64 arithmetic)."""
    bits = dropout_bits(int(np.prod(shape)), key)
    return (bits.astype(np.float64) / 2.0 ** 24 >= rate).reshape(shape)


def dropout(x, rate, key):
    (x,) = _f64(x)
    return np.where(dropout_keep(x.shape, rate, key), x / (1.0 - rate), 0.0)


def dropout_backward(dy, rate, key):
    return dropout(dy, rate, key)


# -- batches from a resident training set -------------------------------------------------------

def gather_batch(data, labels, index, start, width):
    (data,) = _f64(data)
    b = len(index)
    x = np.zeros((b, data.shape[1], width))
    y = np.zeros(b, dtype=np.int32)
    for i in range(b):
        x[i] = data[index[i], :, start[i]:start[i] + width]
        y[i] = labels[index[i]]
    return x, y


def mask_spans(x, f0, fw, t0, tw):
    (x,) = _f64(x)
    y = x.copy()
    _, h, w = x.shape
    for b in range(len(x)):
        rows = range(max(0, int(f0[b])), min(h, int(f0[b]) + int(fw[b])))
        cols = range(max(0, int(t0[b])), min(w, int(t0[b]) + int(tw[b])))
        for r in rows:
            y[b, r, :] = 0.0
        for t in cols:
            y[b, :, t] = 0.0
    return y


def mix(x, perm, lam):
    x, lam = _f64(x, lam)
    y = np.zeros_like(x)
    for b in range(len(x)):
        y[b] = lam[b] * x[b] + (1 - lam[b]) * x[perm[b]]
    return y


# -- a loss that stays on the backend -----------------------------------------------------------

def smoothed_targets(k, labels_a, labels_b, lam, smoothing=0.0):
    """[N, K] targets of mixup pairs with label smoothing eps:
    ``(1 - eps) (lam onehot(a) + (1 - lam) onehot(b)) + eps / K``."""
    (lam,) = _f64(lam)
    t = np.zeros((len(lam), k))
    for n, w in enumerate(lam):
        t[n, int(labels_a[n])] += w
        t[n, int(labels_b[n])] += 1 - w
    return (1 - smoothing) * t + smoothing / k


def softmax_cross_entropy_acc(logits, labels_a, labels_b, lam, stats, smoothing=0.0):
    """-> (probs, new stats): stats plus (sum of the losses against the smoothed mixup
    targets, sum of the hard labels' credits)."""
    logp = log_softmax(logits)
    (lam, stats) = _f64(lam, stats)
    t = smoothed_targets(logp.shape[1], labels_a, labels_b, lam, smoothing)
    loss = credit = 0.0
    for n, row in enumerate(logp):
        a, b, w = int(labels_a[n]), int(labels_b[n]), float(lam[n])
        loss -= sum(float(t[n, k]) * row[k] for k in np.flatnonzero(t[n]))   # 0 log p is 0
        best = int(np.argmax(row))                      # the first maximum
        credit += w * (best == a) + (1 - w) * (best == b)
    return np.exp(logp), stats + np.array([loss, credit])


def softmax_cross_entropy_acc_backward(probs, labels_a, labels_b, lam, smoothing=0.0):
    (probs,) = _f64(probs)
    return (probs - smoothed_targets(probs.shape[1], labels_a, labels_b, lam, smoothing)
            ) / len(probs)
