"""CuPy: its own sequence ops (:mod:`genrecnn.engine.ops.sequence`); pooling and softmax
are planned for both CUDA backends in :mod:`genrecnn.backends.cuda_kernels.sequence`.

The convolution is one im2col kernel writing the column matrix of the whole batch
``[C*K, N*Wo]`` and ONE cuBLAS GEMM over it (:mod:`.blas`); its backward is one GEMM for
dw, one for the column gradient and a col2im gather. The backward reuses the forward's
column matrix while its input array is alive, else rebuilds it. A convolution with few
filters (a 32-row GEMM re-reads a huge column matrix for little work) runs its forward
and weight gradient on ``conv1d_direct.cu``, which reads x once and writes no column
matrix. The activations run the kernels PyCUDA runs, ReLU on 16-byte vectors where the
arrays allow.
"""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.engine.ops import ACTIVATIONS

from . import blas as B
from . import kernels as K
from .host import HostBase

try:  # CuPy stays optional: the backend must import (and be listed) without it
    import cupy as cp
except Exception:  # ImportError, or a broken CUDA install raising at import
    cp = None

_ACT_CODE = {kind: i for i, kind in enumerate(ACTIVATIONS)}


class CupySequenceOps(HostBase):
    """conv1d, dense and activation for :class:`.CupyBackend`
    (listed before ``Backend`` among its bases)."""

    direct_conv1d_max_filters = G.DIRECT_CONV1D_MAX_FILTERS

    # -- convolution ----------------------------------------------------------------------

    @staticmethod
    def _im2col(x, k: int):
        n, c, w = x.shape
        wo = w - k + 1
        cols = cp.empty((c * k, n * wo), dtype=x.dtype)
        K.launch_blocks("gemm_cols.cu", "im2col1d", str(x.dtype), n * c * k, wo,
                        (x, cols, K.i32(n), K.i32(c), K.i32(w), K.i32(k), K.i32(wo)))
        return cols

    def conv1d(self, x, w, b, precision="fp32"):
        if precision != "fp32":
            return self._lp_conv1d(x, w, b, precision)
        f, c, k = w.shape
        n, _, width = x.shape
        wo = width - k + 1
        if f <= self.direct_conv1d_max_filters:
            y = cp.empty((n, f, wo), dtype=x.dtype)
            K.launch("conv1d_direct.cu", "conv1d_direct_fwd", x.dtype,
                     *G.conv1d_direct_fwd_grid(n, f, wo),
                     (x, w, b, y, K.i32(c), K.i32(width), K.i32(f)), KW=k)
            return y
        cols = self._im2col(x, k)
        self._remember_cols(x, k, cols)
        yr = B.matmul(w.reshape(f, c * k), cols)                        # [F, N*Wo], one GEMM
        y = cp.empty((n, f, wo), dtype=x.dtype)
        K.launch_rows("gemm_cols.cu", "unfold_bias", str(x.dtype), n * f, wo,
                      (yr, b, y, K.i32(n), K.i32(f), K.i32(wo)))
        return y

    def conv1d_backward(self, x, w, dy, precision="fp32"):
        if precision != "fp32":
            return self._lp_conv1d_backward(x, w, dy, precision)
        f, c, k = w.shape
        n, _, width = x.shape
        wo = width - k + 1
        if f <= self.direct_conv1d_max_filters:
            dw, db = self._direct_param_grads(x, w, dy)
            dyr = self._fold_conv1d(dy)
        else:
            dyr, dw, db = self._conv_param_grads(x, w, dy)
        dcols = B.matmul(w.reshape(f, c * k), dyr, trans_a=True)                     # one GEMM
        dx = cp.empty((n, c, width), dtype=x.dtype)
        K.launch_rows("gemm_cols.cu", "col2im1d", str(x.dtype), n * c, width,
                      (dcols, dx, K.i32(n), K.i32(c), K.i32(width), K.i32(k), K.i32(wo)))
        return dx, dw, db

    def conv1d_backward_params(self, x, w, dy, precision="fp32"):
        if precision != "fp32":
            return self._lp_conv1d_backward_params(x, w, dy, precision)
        if w.shape[0] <= self.direct_conv1d_max_filters:
            return self._direct_param_grads(x, w, dy)
        return self._conv_param_grads(x, w, dy)[1:]

    def _direct_param_grads(self, x, w, dy):
        """(dw, db) from conv1d_direct_dw: one buffer [dw | db], split over the batch."""
        f, c, k = w.shape
        n, _, width = x.shape
        if n == 0:
            return cp.zeros(w.shape, dtype=w.dtype), cp.zeros((f,), dtype=w.dtype)
        plan = G.conv1d_dw_plan(n, c, width, f, k, x.dtype.itemsize, K.current_sm_count())
        part = cp.empty((plan.splits, plan.size), dtype=x.dtype)
        K.launch("conv1d_direct.cu", "conv1d_direct_dw", x.dtype, plan.grid, plan.block,
                 (x, dy, part, K.i32(n), K.i32(c), K.i32(width), K.i32(f), K.i32(plan.per)),
                 KW=k, DW_C=plan.channels)
        sums = part[0]
        if plan.splits > 1:
            sums = cp.empty((plan.size,), dtype=x.dtype)
            K.launch("splits.cu", "sum_splits", x.dtype, *G.sum_splits_grid(plan.size),
                     (part, sums, K.i32(plan.splits), K.i64(plan.size), K.NULL, K.i32(1)))
        return sums[:f * c * k].reshape(f, c, k), sums[f * c * k:]

    @staticmethod
    def _fold_conv1d(dy):
        """dy [N, F, Wo] as the GEMM's [F, N*Wo]."""
        n, f, wo = dy.shape
        dyr = cp.empty((f, n * wo), dtype=dy.dtype)
        K.launch_rows("gemm_cols.cu", "fold", str(dy.dtype), f * n, wo,
                      (dy, dyr, K.i32(n), K.i32(f), K.i32(wo)))
        return dyr

    def _conv_param_grads(self, x, w, dy):
        """(dy folded to [F, N*Wo], dw, db)."""
        f, c, k = w.shape
        dyr = self._fold_conv1d(dy)
        cols = self._forward_cols(x, k)
        dw = B.matmul(dyr, cols, trans_b=True).reshape(f, c, k)                        # one GEMM
        return dyr, dw, dyr.sum(axis=1)

    # -- dense ---------------------------------------------------------------------------

    def dense(self, x, w, b, precision="fp32"):
        if precision != "fp32":
            return self._lp_dense(x, w, b, precision)
        y = B.matmul(x, w)
        y += b
        return y

    def dense_backward(self, x, w, dy, precision="fp32"):
        if precision != "fp32":
            return self._lp_dense_backward(x, w, dy, precision)
        return B.matmul(dy, w, trans_b=True), B.matmul(x, dy, trans_a=True), dy.sum(axis=0)

    # -- activations -----------------------------------------------------------------------

    @staticmethod
    def _act_code(kind) -> int:
        if kind not in _ACT_CODE:
            raise ValueError(f"unknown activation {kind!r}")
        return _ACT_CODE[kind]

    @staticmethod
    def _relu_vec(x, dy):
        """ReLU (dy None) or its gradient on 16-byte vectors; None where the size is not a
        whole number of vectors or an array does not start on a 16-byte boundary. (Built
        with ACT of relu: the module act_fwd/act_bwd for relu come from.)"""
        lanes = 16 // x.dtype.itemsize
        arrays = (x,) if dy is None else (x, dy)
        if x.size == 0 or x.size % lanes or any(a.data.ptr % 16 for a in arrays):
            return None
        out = cp.empty_like(x)
        name = "relu_fwd_vec" if dy is None else "relu_bwd_vec"
        K.launch_flat("elementwise.cu", name, x.dtype, x.size // lanes,
                      arrays + (out, K.i64(x.size // lanes)), ACT=_ACT_CODE["relu"])
        return out

    def activation(self, kind, x, slope=0.01):
        code = self._act_code(kind)
        y = self._relu_vec(x, None) if kind == "relu" else None
        if y is None:
            y = cp.empty_like(x)
            K.launch_flat("elementwise.cu", "act_fwd", x.dtype, x.size,
                          (x, y, K.i64(x.size), x.dtype.type(slope)), ACT=code)
        return y

    def activation_backward(self, kind, x, y, dy, slope=0.01):
        code = self._act_code(kind)
        dx = self._relu_vec(x, dy) if kind == "relu" else None
        if dx is None:
            dx = cp.empty_like(x)
            K.launch_flat("elementwise.cu", "act_bwd", x.dtype, x.size,
                          (x, y, dy, dx, K.i64(x.size), x.dtype.type(slope)), ACT=code)
        return dx
