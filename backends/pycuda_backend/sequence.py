"""PyCUDA: its own sequence ops (:mod:`genrecnn.engine.ops.sequence`): conv1d and dense on
the tiled GEMMs (:mod:`.gemm`), a convolution with few filters (at most
``direct_conv1d_max_filters``) on ``conv1d_direct.cu``, which reads x once, and the
activations; pooling and softmax are planned for both CUDA backends in
:mod:`genrecnn.backends.cuda_kernels.sequence`. Nothing here waits for the device.
"""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.engine.ops import ACTIVATIONS, conv1d_out_width

from .host import HostBase

_ACT_CODE = {kind: i for i, kind in enumerate(ACTIVATIONS)}


class PycudaSequenceOps(HostBase):
    """conv1d, dense and activation for :class:`.PycudaBackend` (listed before
    ``Backend`` among its bases)."""

    direct_conv1d_max_filters = G.DIRECT_CONV1D_MAX_FILTERS

    # -- convolution -----------------------------------------------------------------------

    def conv1d(self, x, w, b, precision="fp32"):
        if precision != "fp32":
            return self._lp_conv1d(x, w, b, precision)
        dt = str(x.dtype)
        (n, c, width), (f, _, k) = x.shape, w.shape
        wo = conv1d_out_width(width, k)
        y = self._empty((n, f, wo), dt)
        if y.size and f <= self.direct_conv1d_max_filters:
            self._launch("conv1d_direct.cu", "conv1d_direct_fwd", "PPPPiii", dt,
                         *G.conv1d_direct_fwd_grid(n, f, wo), self._ptr(x),
                         self._ptr(w), self._ptr(b), self._ptr(y), c, width, f, KW=k)
        elif y.size:
            self._gemm("conv_taps_fwd", dt, f, wo, n, self._tile(f, wo, n),
                       (self._ptr(x), self._ptr(w), self._ptr(b), self._ptr(y), c, width, f),
                       "PPPPiii", KW=k)
        return y

    def conv1d_backward(self, x, w, dy, precision="fp32"):
        if precision != "fp32":
            return self._lp_conv1d_backward(x, w, dy, precision)
        dw, db = self.conv1d_backward_params(x, w, dy)
        dt = str(x.dtype)
        (n, c, width), (f, _, k) = x.shape, w.shape
        dx = self._empty((n, c, width), dt)
        if n:
            self._gemm("conv_taps_dx", dt, c, width, n, self._tile(c, width, n),
                       (self._ptr(dy), self._ptr(w), self._ptr(dx), c, width, f), "PPPiii", KW=k)
        return dx, dw, db

    def conv1d_backward_params(self, x, w, dy, precision="fp32"):
        if precision != "fp32":
            return self._lp_conv1d_backward_params(x, w, dy, precision)
        dt = str(x.dtype)
        (n, c, width), (f, _, k) = x.shape, w.shape
        wo = conv1d_out_width(width, k)
        if n and f <= self.direct_conv1d_max_filters:
            return self._conv_dw_direct(x, dy, dt, n, c, width, f, k)
        dw = self._empty((f, c, k), dt)
        if n == 0:
            self._zero_fill(dw)
        else:
            self._conv_dw(x, dy, dw, dt, n, c, width, f, k, wo)
        return dw, self._channel_total(dy, n, f, wo)

    def _conv_dw_direct(self, x, dy, dt, n, c, width, f, k):
        """(dw, db) from conv1d_direct_dw: one buffer [dw | db], split over the batch."""
        plan = G.conv1d_dw_plan(n, c, width, f, k, x.dtype.itemsize, self.sm_count)
        sums = self._empty((plan.size,), dt)
        part = sums if plan.splits == 1 else self._empty((plan.splits, plan.size), dt)
        self._launch("conv1d_direct.cu", "conv1d_direct_dw", "PPPiiiii", dt, plan.grid,
                     plan.block, self._ptr(x), self._ptr(dy), self._ptr(part), n, c, width,
                     f, plan.per, KW=k, DW_C=plan.channels)
        if plan.splits > 1:
            self._sum_splits(dt, part, sums, plan.splits, plan.size)
        return sums[:f * c * k].reshape((f, c, k)), sums[f * c * k:]

    # -- dense -----------------------------------------------------------------------------

    def dense(self, x, w, b, precision="fp32"):
        if precision != "fp32":
            return self._lp_dense(x, w, b, precision)
        dt = str(x.dtype)
        (n, i), o = x.shape, w.shape[1]
        y = self._empty((n, o), dt)
        if y.size:
            self._dense_gemm("dense_fwd", dt, n, o, i, (x, w), b, y, (n, i, o))
        return y

    def dense_backward(self, x, w, dy, precision="fp32"):
        if precision != "fp32":
            return self._lp_dense_backward(x, w, dy, precision)
        dt = str(x.dtype)
        (n, i), o = x.shape, w.shape[1]
        dx, dw = self._empty((n, i), dt), self._empty((i, o), dt)
        if dx.size:
            self._dense_gemm("dense_dx", dt, n, i, o, (dy, w), None, dx, (n, i, o))
        if dw.size:
            self._dense_gemm("dense_dw", dt, i, o, n, (x, dy), None, dw, (n, i, o))
        return dx, dw, self._channel_total(dy, n, o, 1)

    # -- activations -----------------------------------------------------------------------

    @staticmethod
    def _act_code(kind) -> int:
        if kind not in _ACT_CODE:
            raise ValueError(f"unknown activation {kind!r}")
        return _ACT_CODE[kind]

    def activation(self, kind, x, slope=0.01):
        dt = str(x.dtype)
        y = self._empty(x.shape, dt)
        self._elementwise("act_fwd", "PPqT", dt, y.size, self._ptr(x), self._ptr(y), y.size,
                          float(slope), ACT=self._act_code(kind))
        return y

    def activation_backward(self, kind, x, y, dy, slope=0.01):
        dt = str(x.dtype)
        dx = self._empty(x.shape, dt)
        self._elementwise("act_bwd", "PPPPqT", dt, dx.size, self._ptr(x), self._ptr(y),
                          self._ptr(dy), self._ptr(dx), dx.size, float(slope),
                          ACT=self._act_code(kind))
        return dx
