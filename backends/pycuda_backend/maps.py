"""PyCUDA: conv2d, the 2-D map op (:mod:`genrecnn.engine.ops.maps`) that is its own; max
pooling, batch norm and dropout are planned for both CUDA backends in
:mod:`genrecnn.backends.cuda_kernels.maps`.

A convolution is im2col (``conv2d.cu``) into per-example column matrices
``[N, C*KH*KW, Ho*Wo]`` and the tiled GEMMs of ``gemm.cu`` with a kernel width of 1:
``conv_taps_fwd`` writes y batch-first with its bias, ``conv_taps_dw`` (split-K) gives dw
and ``conv_taps_dx`` the column gradient that col2im gathers back onto the input (no
atomics). A one-channel input (a spectrogram CNN's first layer) skips the column
matrix: ``conv2d_c1.cu`` reads the map in place (:mod:`...cuda_kernels.direct`, shared
with CuPy). All launches go through the
backend's ``_launch``/``_elementwise``/``_gemm``; nothing here waits for the device.
"""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G

from .host import HostBase



class PycudaMapOps(HostBase):
    """conv2d for :class:`.PycudaBackend`
    (listed before ``Backend`` among its bases)."""

    # -- convolution ---------------------------------------------------------------------

    def conv2d(self, x, w, b, stride, padding, precision="fp32"):
        if precision != "fp32":
            return self._lp_conv2d(x, w, b, stride, padding, precision)
        g = G.conv2d_shape(x.shape, w.shape, stride, padding)
        dt = str(x.dtype)
        y = self._empty((g.n, g.f, g.ho, g.wo), dt)
        if not y.size:
            return y
        if g.direct:
            return self._c1_forward(x, w, b, g)
        cols = self._im2col2d(x, g)
        # y[n] = w[F, R] @ cols[n] + b, every example in one launch (grid z = n)
        self._gemm("conv_taps_fwd", dt, g.f, g.p, g.n, self._tile(g.f, g.p, g.n),
                   (self._ptr(cols), self._ptr(w), self._ptr(b), self._ptr(y), g.r, g.p, g.f),
                   "PPPPiii", KW=1)
        return y

    def conv2d_backward(self, x, w, dy, stride, padding, precision="fp32"):
        if precision != "fp32":
            return self._lp_conv2d_backward(x, w, dy, stride, padding, precision)
        g = G.conv2d_shape(x.shape, w.shape, stride, padding)
        dt = str(x.dtype)
        dw, db = self._conv2d_params(x, dy, g)
        dx = self._empty(x.shape, dt)
        if dx.size:
            dcols = self._empty((g.n, g.r, g.p), dt)
            # dcols[n] = w[F, R]^T @ dy[n]
            self._gemm("conv_taps_dx", dt, g.r, g.p, g.n, self._tile(g.r, g.p, g.n),
                       (self._ptr(dy), self._ptr(w), self._ptr(dcols), g.r, g.p, g.f),
                       "PPPiii", KW=1)
            grid, block = G.copy_rows_grid(g.n * g.c, g.h * g.w)
            self._run("conv2d.cu", "col2im2d", "PP" + "i" * 11 + "qq", dt, grid, block,
                      self._ptr(dcols), self._ptr(dx), g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw,
                      g.ph, g.pw, g.ho, g.wo, g.p, g.r * g.p)
        return dx, dw, db

    def conv2d_backward_params(self, x, w, dy, stride, padding, precision="fp32"):
        if precision != "fp32":
            return self._lp_conv2d_backward_params(x, w, dy, stride, padding, precision)
        return self._conv2d_params(x, dy, G.conv2d_shape(x.shape, w.shape, stride, padding))

    def _conv2d_params(self, x, dy, g):
        """(dw, db): direct kernels for one input channel, else the split-K ``conv_taps_dw``
        over the column matrices and norm.cu's per-channel sums for db."""
        dt = str(x.dtype)
        if g.direct:
            return self._c1_params(x, dy, g)
        if not dy.size:
            return self.zeros((g.f, g.c, g.kh, g.kw), dt), self.zeros((g.f,), dt)
        dw = self._empty((g.f, g.c, g.kh, g.kw), dt)
        self._conv_dw(self._im2col2d(x, g), dy, dw, dt, g.n, g.r, g.p, g.f, 1, g.p)
        return dw, self._channel_total(dy, g.n, g.f, g.p)

    def _im2col2d(self, x, g):
        """Per-example column matrices [N, R, P] (conv2d.cu with sr = P, sn = R*P)."""
        cols = self._empty((g.n, g.r, g.p), str(x.dtype))
        grid, block = G.copy_rows_grid(g.n * g.r, g.p)
        self._run("conv2d.cu", "im2col2d", "PP" + "i" * 11 + "qq", str(x.dtype), grid, block,
                  self._ptr(x), self._ptr(cols), g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph,
                  g.pw, g.wo, g.p, g.p, g.r * g.p)
        return cols
