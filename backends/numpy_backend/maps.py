"""NumPy implementation of the contract's 2-D map ops (see :mod:`genrecnn.engine.ops.maps`).

Vectorised over the batch like the rest of the backend. The 2-D convolution
takes the batch a chunk at a time: an im2col (one strided copy per kernel tap)
into scratch kept between calls, then batched GEMMs; its input gradient is a
GEMM and a col2im (one strided add per tap). Pooling keeps a running maximum
over the kernel taps, its backward is a scatter-add; batch normalisation works
on per-channel sums. Copies and elementwise passes are split over the cores by
batch slices, while BLAS runs the GEMMs on all of them.
"""
from __future__ import annotations

import math
import threading

import numpy as np

from genrecnn.engine.ops import conv2d_out, lowbias32, pool2d_out
from genrecnn.engine.ops.maps import GOLDEN

from .parallel import over_batch
from .sequence import rounded


# -- 2-D convolution -----------------------------------------------------------------------

_CHUNK = 1 << 23     # elements of im2col columns per chunk of the batch (32 MB in float32)
_local = threading.local()


def _work(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A scratch array kept between calls (per thread): a large fresh array costs a
    page fault per 4 kB on first touch, more than filling it."""
    size = int(np.prod(shape))
    bufs = _local.__dict__.setdefault("bufs", {})
    buf = bufs.get((name, np.dtype(dtype)))
    if buf is None or buf.size < size:
        buf = bufs[(name, np.dtype(dtype))] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def _taps(x, kh, kw, sh, sw, ho, wo):
    """(u, v, view) for every kernel tap: view[n, c, i, j] = x[n, c, i sh + u, j sw + v]."""
    for u in range(kh):
        for v in range(kw):
            yield u, v, x[:, :, u:u + sh * (ho - 1) + 1:sh, v:v + sw * (wo - 1) + 1:sw]


class _Geometry:
    """Sizes of one convolution, and the batch cut into chunks whose im2col columns
    fit in ``_CHUNK`` elements (at least one example each)."""

    def __init__(self, x, w, stride, padding):
        self.n, self.c, self.h, self.w = x.shape
        self.f, _, self.kh, self.kw = w.shape
        (self.sh, self.sw), (self.ph, self.pw) = stride, padding
        self.ho = conv2d_out(self.h, self.kh, self.sh, self.ph)
        self.wo = conv2d_out(self.w, self.kw, self.sw, self.pw)
        self.rows, self.cols = self.c * self.kh * self.kw, self.ho * self.wo
        self.identity = (self.kh == self.kw == self.sh == self.sw == 1
                         and not (self.ph or self.pw))      # a 1x1 convolution reads x as it is
        per = max(1, _CHUNK // (self.rows * self.cols))
        self.chunks = [slice(a, min(self.n, a + per)) for a in range(0, self.n, per)]

    def padded(self, name, m, dtype):
        """Scratch [m, C, H + 2 ph, W + 2 pw] for x with its zero border, and the
        interior view (to be filled, and the border zeroed, by :meth:`pad`)."""
        g = self
        xp = _work(name, (m, g.c, g.h + 2 * g.ph, g.w + 2 * g.pw), dtype)
        return xp, xp[:, :, g.ph:g.ph + g.h, g.pw:g.pw + g.w]

    def im2col(self, xs):
        """xs[m, C, H, W] -> columns [m, C*KH*KW, Ho*Wo] (rows in w's (c, u, v) order)."""
        g, m = self, xs.shape[0]
        if g.identity:
            return xs.reshape(m, g.c, g.cols)
        xp, inner = g.padded("xp", m, xs.dtype) if g.ph or g.pw else (xs, xs)
        cols = _work("cols", (m, g.c, g.kh, g.kw, g.ho, g.wo), xs.dtype)

        def fill(s):
            if inner is not xs:
                xp[s] = 0
                inner[s] = xs[s]
            for u, v, tap in _taps(xp[s], g.kh, g.kw, g.sh, g.sw, g.ho, g.wo):
                cols[s, :, u, v] = tap
        over_batch(fill, m, cols.size)
        return cols.reshape(m, g.rows, g.cols)

    def col2im(self, dcols, out):
        """The adjoint of :meth:`im2col`: every tap's columns added back, into ``out``."""
        g, m = self, dcols.shape[0]
        dcols = dcols.reshape(m, g.c, g.kh, g.kw, g.ho, g.wo)
        dxp, inner = g.padded("dxp", m, dcols.dtype) if g.ph or g.pw else (out, out)

        def add(s):
            dxp[s] = 0
            for u, v, tap in _taps(dxp[s], g.kh, g.kw, g.sh, g.sw, g.ho, g.wo):
                tap += dcols[s, :, u, v]
            if inner is not out:
                out[s] = inner[s]
        over_batch(add, m, dcols.size)


def _conv2d_backward(x, w, dy, stride, padding, want_dx: bool):
    """(dx or None, dw, db), a chunk of the batch at a time: the chunk's columns give
    its share of dw; w^T dy gives its columns' gradient, which col2im adds back."""
    g = _Geometry(x, w, stride, padding)
    w2 = w.reshape(g.f, g.rows)
    dy3 = dy.reshape(g.n, g.f, g.cols)
    dw = np.zeros((g.f, g.rows), dtype=w.dtype)
    dx = np.empty_like(x) if want_dx else None
    for s in g.chunks:
        cols = g.im2col(x[s])
        dw += np.matmul(dy3[s], cols.transpose(0, 2, 1)).sum(axis=0)
        if want_dx:
            dcols = np.matmul(w2.T, dy3[s], out=_work("dcols", (cols.shape[0], g.rows, g.cols),
                                                       x.dtype))
            g.col2im(dcols, dx[s])
    return dx, dw.reshape(w.shape), dy3.sum(axis=(0, 2))


# -- 2-D max pooling -----------------------------------------------------------------------

def _window_max(taps, y, idx):
    """Max over ``taps`` [(offset, view)] into ``y``, and in ``idx`` the offset of the
    first maximum, a NaN counting as the maximum: a tap takes over where it is
    greater, or is NaN while the maximum so far is not. Each strided tap is copied
    once into a contiguous buffer (strided reads cost most); the rest is contiguous."""
    y[...] = taps[0][1]
    idx[...] = taps[0][0]
    tap = np.empty_like(y)
    later = np.empty(y.shape, dtype=bool)
    known = np.empty(y.shape, dtype=bool)
    step = np.empty_like(idx)
    for off, view in taps[1:]:
        tap[...] = view
        np.less_equal(tap, y, out=later)          # False where tap > y or either is NaN
        np.logical_not(later, out=later)
        np.equal(y, y, out=known)                 # y is not NaN
        later &= known
        np.subtract(off, idx, out=step)
        step *= later
        idx += step                               # idx = off where the tap takes over
        np.maximum(y, tap, out=y)                 # NaN propagates


# -- batch normalisation --------------------------------------------------------------------

def _per_channel(x):
    """x[N, C, ...] as [N, C, S] (a view)."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _channel_sum(a3):
    """Sum of [N, C, S] over N and S, accumulated in float64 -> [C] float64."""
    return a3.sum(axis=2).sum(axis=0, dtype=np.float64)


def _col(v, dtype):
    return np.asarray(v, dtype=dtype)[None, :, None]


def statistics(x3, eps, xc=None):
    """(mean, invstd) float64 [C] of x[N, C, S], batchnorm_train's: the mean, then the
    centred squares summed a batch slice at a time (kept in ``xc`` when given)."""
    m = x3.shape[0] * x3.shape[2]
    mean = _channel_sum(x3) / m
    sq = np.zeros((x3.shape[0], x3.shape[1]))

    def centre(s):
        d = np.subtract(x3[s], _col(mean, x3.dtype), out=None if xc is None else xc[s])
        sq[s] = np.einsum("ncs,ncs->nc", d, d)
    over_batch(centre, x3.shape[0], x3.size)
    return mean, 1.0 / np.sqrt(sq.sum(axis=0) / m + eps)


def scatter_add(dx3, argmax3, dy3):
    """dx3[n, c, argmax3[n, c, q]] += dy3[n, c, q], [N, C, S] arrays: an unbuffered
    scatter-add (windows that share a maximum sum their gradients) by flat index into
    each batch slice, in int32 arithmetic where it fits."""
    n, c, plane = dx3.shape

    def scatter(s):
        m = s.stop - s.start
        kind = np.int32 if m * c * plane < 2 ** 31 else np.int64
        at = argmax3[s] + np.arange(0, m * c * plane, plane, dtype=kind).reshape(m, c, 1)
        np.add.at(dx3[s].reshape(-1), at.ravel(), dy3[s].ravel())
    over_batch(scatter, n, dx3.size)


# -- the mixin ------------------------------------------------------------------------------

class NumpyMapOps:
    """conv2d, maxpool2d, batchnorm, dropout for :class:`.NumpyBackend`."""

    # -- 2-D convolution ----------------------------------------------------------------

    def conv2d(self, x, w, b, stride, padding, precision="fp32"):
        x, w = rounded(precision, x, w)
        g = _Geometry(x, w, stride, padding)
        w2 = w.reshape(g.f, g.rows)
        y = np.empty((g.n, g.f, g.cols), dtype=x.dtype)
        for s in g.chunks:
            np.matmul(w2, g.im2col(x[s]), out=y[s])
        y += b[None, :, None]
        return y.reshape(g.n, g.f, g.ho, g.wo)

    def conv2d_backward(self, x, w, dy, stride, padding, precision="fp32"):
        return _conv2d_backward(*rounded(precision, x, w, dy), stride, padding, want_dx=True)

    def conv2d_backward_params(self, x, w, dy, stride, padding, precision="fp32"):
        return _conv2d_backward(*rounded(precision, x, w, dy), stride, padding,
                                want_dx=False)[1:]

    # -- 2-D max pooling ------------------------------------------------------------------

    def maxpool2d(self, x, size, stride):
        n, c, h, w = x.shape
        (kh, kw), (sh, sw) = size, stride
        ho, wo = pool2d_out(h, kh, sh), pool2d_out(w, kw, sw)
        y = np.empty((n, c, ho, wo), dtype=x.dtype)
        arg = np.empty((n, c, ho, wo), dtype=np.int32)

        def run(s):
            taps = [(u * w + v, view) for u, v, view in _taps(x[s], kh, kw, sh, sw, ho, wo)]
            _window_max(taps, y[s], arg[s])
        over_batch(run, n, x.size)
        # offsets are relative to each window's corner (i sh, j sw)
        arg += (np.arange(ho, dtype=np.int32)[:, None] * (sh * w)
                + np.arange(wo, dtype=np.int32)[None, :] * sw)
        return y, arg

    def maxpool2d_backward(self, dy, argmax, height, width):
        n, c = dy.shape[:2]
        dx = np.zeros((n, c, height * width), dtype=dy.dtype)
        scatter_add(dx, argmax.reshape(n, c, -1), dy.reshape(n, c, -1))
        return dx.reshape(n, c, height, width)

    # -- batch normalisation ----------------------------------------------------------------

    def batchnorm_train(self, x, gamma, beta, eps):
        x3 = _per_channel(x)
        xc = np.empty_like(x3)
        mean, invstd = statistics(x3, eps, xc)
        scale, shift = _col(invstd * gamma, x.dtype), _col(beta, x.dtype)

        def normalise(s):
            xc[s] *= scale
            xc[s] += shift
        over_batch(normalise, x3.shape[0], x3.size)
        return xc.reshape(x.shape), mean.astype(x.dtype), invstd.astype(x.dtype)

    def batchnorm_running_update(self, running_mean, running_var, mean, invstd, count,
                                 momentum, eps):
        var = 1.0 / np.square(invstd, dtype=np.float64) - eps
        if count > 1:
            var *= count / (count - 1)
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += (momentum * var).astype(running_var.dtype)

    def batchnorm_infer(self, x, gamma, beta, running_mean, running_var, eps):
        scale = gamma / np.sqrt(running_var.astype(np.float64) + eps)
        shift = _col(beta - running_mean * scale, x.dtype)
        scale = _col(scale, x.dtype)
        x3 = _per_channel(x)
        y = np.empty_like(x3)

        def run(s):
            np.multiply(x3[s], scale, out=y[s])
            y[s] += shift
        over_batch(run, x3.shape[0], x3.size)
        return y.reshape(x.shape)

    def batchnorm_backward(self, x, gamma, mean, invstd, dy):
        x3, dy3 = _per_channel(x), _per_channel(dy)
        n, m = x3.shape[0], x3.shape[0] * x3.shape[2]
        xc = np.empty_like(x3)
        part = np.zeros((2, n, x3.shape[1]))

        def sums(s):
            np.subtract(x3[s], _col(mean, x.dtype), out=xc[s])
            part[0, s] = dy3[s].sum(axis=2)
            part[1, s] = np.einsum("ncs,ncs->nc", dy3[s], xc[s])
        over_batch(sums, n, 2 * x3.size)
        dbeta = part[0].sum(axis=0)
        dgamma = part[1].sum(axis=0) * invstd
        # dx = gamma invstd / m (m dy - dbeta - xhat dgamma), xhat = xc invstd
        k = gamma.astype(np.float64) * invstd
        k_dy, k_xc = _col(k, x.dtype), _col(-k * invstd * dgamma / m, x.dtype)
        k_0 = _col(-k * dbeta / m, x.dtype)
        dx = np.empty_like(x3)

        def grad(s):
            np.multiply(dy3[s], k_dy, out=dx[s])
            xc[s] *= k_xc
            dx[s] += xc[s]
            dx[s] += k_0
        over_batch(grad, n, 2 * x3.size)
        return dx.reshape(x.shape), dgamma.astype(x.dtype), dbeta.astype(x.dtype)

    # -- dropout ------------------------------------------------------------------------------

    @staticmethod
    def _dropout(x, rate, key):
        seed, offset = (int(v) & 0xFFFFFFFF for v in key)
        k = lowbias32((seed * GOLDEN + offset) & 0xFFFFFFFF)
        i = np.arange(x.size, dtype=np.uint32)
        i *= np.uint32(GOLDEN)
        i += np.uint32(k)
        keep = (lowbias32(i) >> 8) >= math.ceil(rate * 2 ** 24)     # the contract's exact test
        return np.multiply(x, keep.reshape(x.shape), dtype=x.dtype) * x.dtype.type(1 / (1 - rate))

    def dropout(self, x, rate, key):
        return self._dropout(x, rate, key)

    def dropout_backward(self, dy, rate, key):
        return self._dropout(dy, rate, key)
