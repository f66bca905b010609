"""CuPy: conv2d, the 2-D map op (:mod:`genrecnn.engine.ops.maps`) that is its own; max
pooling, batch norm and dropout are planned for both CUDA backends in
:mod:`genrecnn.backends.cuda_kernels.maps`.

A convolution is one im2col kernel writing the column matrix of the whole batch,
``[C*KH*KW, N*Ho*Wo]``, and ONE cuBLAS GEMM over it; the bias and the fold back to
batch-first ride in one small kernel. The backward is one GEMM for dw (the forward's
column matrix is reused while its input lives), one GEMM and a col2im gather for dx
(no atomics). A one-channel input (a spectrogram CNN's first layer) skips the column
matrix: direct kernels read the map in place. The kernels are the ones PyCUDA
runs (:mod:`genrecnn.backends.cuda_kernels`); nothing here reads device data back.
"""
from __future__ import annotations

import numpy as np

from genrecnn.backends.cuda_kernels import grids as G

from . import blas as B
from . import kernels as K
from .host import HostBase

try:  # CuPy stays optional: the backend must import (and be listed) without it
    import cupy as cp
except Exception:  # ImportError, or a broken CUDA install raising at import
    cp = None



def _i32(*values) -> tuple:
    return tuple(np.int32(v) for v in values)


class CupyMapOps(HostBase):
    """conv2d for :class:`.CupyBackend`
    (listed before ``Backend`` among its bases)."""

    # -- convolution ---------------------------------------------------------------------

    def conv2d(self, x, w, b, stride, padding, precision="fp32"):
        if precision != "fp32":
            return self._lp_conv2d(x, w, b, stride, padding, precision)
        g = G.conv2d_shape(x.shape, w.shape, stride, padding)
        y = cp.empty((g.n, g.f, g.ho, g.wo), dtype=x.dtype)
        if y.size == 0:
            return y
        if g.direct:
            return self._c1_forward(x, w, b, g)
        cols = self._im2col2d(x, g)
        self._remember_cols(x, g, cols)
        yr = B.matmul(w.reshape(g.f, g.r), cols)                      # [F, N*P]: one GEMM
        K.launch_rows("gemm_cols.cu", "unfold_bias", x.dtype, g.n * g.f, g.p,
                      (yr, b, y) + _i32(g.n, g.f, g.p))
        return y

    def conv2d_backward(self, x, w, dy, stride, padding, precision="fp32"):
        if precision != "fp32":
            return self._lp_conv2d_backward(x, w, dy, stride, padding, precision)
        g = G.conv2d_shape(x.shape, w.shape, stride, padding)
        dyr = self._fold(dy, g)
        dw, db = self._conv2d_params(x, dy, dyr, g)
        dcols = B.matmul(w.reshape(g.f, g.r), dyr, trans_a=True)                  # [R, N*P]: one GEMM
        dx = cp.empty(x.shape, dtype=x.dtype)
        grid, block = G.copy_rows_grid(g.n * g.c, g.h * g.w)
        K.launch("conv2d.cu", "col2im2d", x.dtype, grid, block,
                 (dcols, dx) + _i32(g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.ho, g.wo)
                 + (np.int64(g.n * g.p), np.int64(g.p)))
        return dx, dw, db

    def conv2d_backward_params(self, x, w, dy, stride, padding, precision="fp32"):
        if precision != "fp32":
            return self._lp_conv2d_backward_params(x, w, dy, stride, padding, precision)
        g = G.conv2d_shape(x.shape, w.shape, stride, padding)
        return self._conv2d_params(x, dy, None if g.direct else self._fold(dy, g), g)

    def _conv2d_params(self, x, dy, dyr, g):
        """(dw, db): direct kernels for one input channel, else one GEMM with K = N*P
        (cuBLAS splits that reduction) and norm.cu's per-channel sums for db."""
        if g.direct:
            return self._c1_params(x, dy, g)
        cols = self._forward_cols2d(x, g)
        dw = B.matmul(dyr, cols, trans_b=True).reshape(g.f, g.c, g.kh, g.kw)
        return dw, self._channel_total(dy, g.n, g.f, g.p)

    @staticmethod
    def _im2col2d(x, g):
        """The column matrix [R, N*P] of the whole batch (conv2d.cu's [R, N, P] layout)."""
        cols = cp.empty((g.r, g.n * g.p), dtype=x.dtype)
        grid, block = G.copy_rows_grid(g.n * g.r, g.p)
        K.launch("conv2d.cu", "im2col2d", x.dtype, grid, block,
                 (x, cols) + _i32(g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.wo, g.p)
                 + (np.int64(g.n * g.p), np.int64(g.p)))
        return cols

    def _forward_cols2d(self, x, g):
        """The forward's column matrix of ``x`` (kept by ``_remember_cols`` under the
        call's shapes), else a new one."""
        entry = self._cols.pop(id(x), None)
        if entry is not None and entry[0]() is x and entry[1] == g:
            return entry[2]
        return self._im2col2d(x, g)

    @staticmethod
    def _fold(dy, g):
        """dy[N, F, P] as the GEMM's [F, N*P]."""
        dyr = cp.empty((g.f, g.n * g.p), dtype=dy.dtype)
        K.launch_rows("gemm_cols.cu", "fold", dy.dtype, g.f * g.n, g.p,
                      (dy, dyr) + _i32(g.n, g.f, g.p))
        return dyr
