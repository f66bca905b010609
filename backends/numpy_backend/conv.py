"""The time-axis convolution and its gradients as a few large GEMMs per example.

Every pass works on a chunk of examples small enough that its scratch array
stays in a core's L2 cache, and the chunks of a batch are shared out over the
threads of :mod:`.parallel` (BLAS runs on one thread in each). The GEMMs:

* forward, C >= F: ``z = W_all @ x[n]`` with W_all [K*F, C] (every tap's
  filters stacked) gives each tap's response at every step; ``y[n]`` is the
  sum of the K taps' rows, each shifted by its tap (K adds in cache);
* forward, C < F: the K shifted copies of ``x[n]`` stacked [K*C, Wo]
  (im2col), then one GEMM ``W_flat @ cols``;
* backward: the K shifted copies of ``dy[n]``, zero-padded to the input's
  width, stacked [K*F, W]; then ``dw`` (all taps at once) is ``stack @ x[n].T``
  and ``dx[n]`` is ``W_t @ stack``: two GEMMs, no adds.
"""
from __future__ import annotations

import numpy as np

from .parallel import MADDS_PER_ELEMENT, over_batch

CACHE_BYTES = 1 << 19        # scratch per thread and pass: half a typical L2


def _chunk(bytes_per_example: int) -> int:
    """Examples per GEMM so that their scratch fits in ``CACHE_BYTES``."""
    return max(1, CACHE_BYTES // max(1, bytes_per_example))


def _chunks(s: slice, size: int):
    for a in range(s.start, s.stop, size):
        yield a, min(a + size, s.stop)


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """conv1d: x[N, C, W], w[F, C, K], b[F] -> y[N, F, W-K+1]."""
    n, c, width = x.shape
    f, _, k = w.shape
    wo = width - k + 1
    y = np.empty((n, f, wo), dtype=x.dtype)
    bias = b[:, None]
    if c >= f:
        w_all = np.ascontiguousarray(w.transpose(2, 0, 1)).reshape(k * f, c)
        step = _chunk(k * f * width * x.itemsize)

        def part(s):
            z = np.empty((min(step, s.stop - s.start), k, f, width), dtype=x.dtype)
            for a, e in _chunks(s, step):
                zs, out = z[:e - a], y[a:e]
                np.matmul(w_all, x[a:e], out=zs.reshape(e - a, k * f, width))
                np.add(zs[:, 0, :, :wo], bias, out=out)
                for j in range(1, k):
                    out += zs[:, j, :, j:j + wo]
    else:
        w_flat = np.ascontiguousarray(w.transpose(0, 2, 1)).reshape(f, k * c)
        step = _chunk(k * c * wo * x.itemsize)

        def part(s):
            cols = np.empty((min(step, s.stop - s.start), k, c, wo), dtype=x.dtype)
            for a, e in _chunks(s, step):
                cs, out = cols[:e - a], y[a:e]
                for j in range(k):
                    cs[:, j] = x[a:e, :, j:j + wo]
                np.matmul(w_flat, cs.reshape(e - a, k * c, wo), out=out)
                out += bias
    over_batch(part, n, y.size * k * (c // MADDS_PER_ELEMENT + 1), blas=True)
    return y


def backward(x: np.ndarray, w: np.ndarray, dy: np.ndarray, need_dx: bool = True):
    """conv1d's gradients: (dx or None, dw, db) from x, w and dy[N, F, W-K+1]."""
    n, c, width = x.shape
    f, _, k = w.shape
    wo = dy.shape[2]
    dx = np.empty(x.shape, dtype=x.dtype) if need_dx else None
    w_t = np.ascontiguousarray(w.transpose(1, 2, 0)).reshape(c, k * f) if need_dx else None
    step = _chunk(k * f * width * x.itemsize)
    sums: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def part(s):
        stack = np.zeros((min(step, s.stop - s.start), k, f, width), dtype=x.dtype)
        dw = np.zeros((k * f, c), dtype=x.dtype)
        db = np.zeros(f, dtype=x.dtype)
        for a, e in _chunks(s, step):
            st = stack[:e - a]
            for j in range(k):            # stack[:, j, :, t] = dy[:, :, t - j]; borders stay 0
                st[:, j, :, j:j + wo] = dy[a:e]
            flat = st.reshape(e - a, k * f, width)
            dw += np.matmul(flat, x[a:e].transpose(0, 2, 1)).sum(axis=0)
            db += dy[a:e].sum(axis=(0, 2))
            if need_dx:
                np.matmul(w_t, flat, out=dx[a:e])
        sums[s.start] = dw, db

    over_batch(part, n, dy.size * k * (2 * c // MADDS_PER_ELEMENT + 1), blas=True)
    dw, db = (sum(parts) for parts in zip(*(sums[i] for i in sorted(sums))))
    dw = np.ascontiguousarray(dw.reshape(k, f, c).transpose(1, 2, 0))
    return dx, dw, db
