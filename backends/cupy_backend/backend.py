"""CuPy implementation of the op contract (see :mod:`genrecnn.engine.ops`).

Matrix work is cuBLAS (through :mod:`.blas`, which graph capture allows): the
convolution is one im2col kernel writing the column matrix of the whole batch
``[C*K, N*Wo]`` and ONE GEMM over it; its backward is one GEMM for dw, one for
the column gradient and a col2im gather. The backward reuses the forward's
column matrix while its input array is alive (a weak reference), else rebuilds
it. A convolution with few filters (a 32-row GEMM re-reads a huge column matrix
for little work) runs its forward and weight gradient on the direct kernels both
CUDA backends share (``conv1d_direct.cu``), which read x once and write no column
matrix. Everything else is a hand-written kernel from the ``.cu`` files beside
this module (see :mod:`.kernels`), so a step never leaves the GPU. Inputs are
C-contiguous (the contract says so), so no op copies defensively. Importing this
module needs no CuPy, driver or GPU; :meth:`CupyBackend.availability` says why it
cannot run.
"""
from __future__ import annotations

import weakref

from genrecnn.backends.pycuda_backend import grids as G
from genrecnn.engine.ops import Backend

from . import blas as B
from . import cufiles as CF
from . import kernels as K
from .batches import CupyBatchOps
from .graphs import CupyGraphOps
from .maps import CupyMapOps
from .staging import CupyStaging

try:  # CuPy stays optional: the class must be importable (and listed) without it
    import cupy as cp
except Exception:  # ImportError, or a broken CUDA install raising at import
    cp = None

_CUDA_ERROR_NO_DEVICE = 100


class CupyBackend(CupyGraphOps, CupyMapOps, CupyBatchOps, CupyStaging, Backend):
    name = "cupy"
    device = "cuda"
    dtypes = ("float32", "float64")
    direct_conv1d_max_filters = G.DIRECT_CONV1D_MAX_FILTERS

    @classmethod
    def availability(cls):
        if cp is None:
            try:
                import cupy  # noqa: F401  (re-raise to tell "missing" from "broken")
            except ImportError:
                return False, "cupy not installed"
            except Exception as exc:
                return False, f"cupy failed to import: {type(exc).__name__}: {exc}"
        try:
            import cupy
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError, or libcuda missing altogether
            if getattr(exc, "status", None) == _CUDA_ERROR_NO_DEVICE:
                return False, "no CUDA GPU found"
            return False, f"no CUDA driver ({type(exc).__name__}: {exc})"
        if count == 0:
            return False, "no CUDA GPU found"
        return True, ""

    def synchronize(self):
        cp.cuda.Device().synchronize()

    # -- moving arrays -----------------------------------------------------------------

    def from_host(self, a):
        return cp.array(a, copy=True, order="C")

    def to_host(self, x):
        if not isinstance(x, cp.ndarray):
            x = cp.asarray(x)
        return cp.asnumpy(x, order="C")

    def zeros(self, shape, dtype):
        return cp.zeros(shape, dtype=dtype)

    def adopt(self, x, source):
        """Zero-copy for contiguous CuPy arrays and anything with
        ``__cuda_array_interface__``; a view that is not C-contiguous is copied on
        the device.

        ``cupy.asarray`` wraps the foreign pointer in ``UnownedMemory`` whose
        owner is ``x``, so ``x`` stays alive as long as the CuPy view does.
        """
        if isinstance(x, cp.ndarray) or hasattr(x, "__cuda_array_interface__"):
            return cp.ascontiguousarray(cp.asarray(x))
        return super().adopt(x, source)

    # -- convolution ----------------------------------------------------------------------

    def __init__(self):
        self._cols: dict[int, tuple] = {}     # id(x) -> (weakref to x, K, column matrix)

    def _remember_cols(self, x, k: int, cols) -> None:
        """Keep the forward's column matrix for the backward of the same ``x``; the
        entry dies with ``x`` (inference drops it at once, training after backward)."""
        key = id(x)
        try:
            ref = weakref.ref(x, lambda _r, key=key, cache=self._cols: cache.pop(key, None))
        except TypeError:                     # arrays that take no weak references
            return
        self._cols[key] = (ref, k, cols)

    def _forward_cols(self, x, k: int):
        entry = self._cols.pop(id(x), None)
        if entry is not None and entry[0]() is x and entry[1] == k:
            return entry[2]
        return self._im2col(x, k)

    @staticmethod
    def _im2col(x, k: int):
        n, c, w = x.shape
        wo = w - k + 1
        cols = cp.empty((c * k, n * wo), dtype=x.dtype)
        K.launch_blocks("conv.cu", "im2col", str(x.dtype), n * c * k, wo,
                        (x, cols, K.i32(n), K.i32(c), K.i32(w), K.i32(k), K.i32(wo)))
        return cols

    def conv1d(self, x, w, b):
        f, c, k = w.shape
        n, _, width = x.shape
        wo = width - k + 1
        if f <= self.direct_conv1d_max_filters:
            y = cp.empty((n, f, wo), dtype=x.dtype)
            CF.launch("conv1d_direct.cu", "conv1d_direct_fwd", x.dtype,
                      *G.conv1d_direct_fwd_grid(n, f, wo),
                      (x, w, b, y, K.i32(c), K.i32(width), K.i32(f)), KW=k)
            return y
        cols = self._im2col(x, k)
        self._remember_cols(x, k, cols)
        yr = B.matmul(w.reshape(f, c * k), cols)                        # [F, N*Wo], one GEMM
        y = cp.empty((n, f, wo), dtype=x.dtype)
        K.launch_rows("conv.cu", "unfold_bias", str(x.dtype), n * f, wo,
                      (yr, b, y, K.i32(n), K.i32(f), K.i32(wo)))
        return y

    def conv1d_backward(self, x, w, dy):
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
        K.launch_rows("conv.cu", "col2im", str(x.dtype), n * c, width,
                      (dcols, dx, K.i32(n), K.i32(c), K.i32(width), K.i32(k), K.i32(wo)))
        return dx, dw, db

    def conv1d_backward_params(self, x, w, dy):
        if w.shape[0] <= self.direct_conv1d_max_filters:
            return self._direct_param_grads(x, w, dy)
        return self._conv_param_grads(x, w, dy)[1:]

    def _direct_param_grads(self, x, w, dy):
        """(dw, db) from conv1d_direct_dw: one buffer [dw | db], split over the batch."""
        f, c, k = w.shape
        n, _, width = x.shape
        if n == 0:
            return cp.zeros(w.shape, dtype=w.dtype), cp.zeros((f,), dtype=w.dtype)
        plan = G.conv1d_dw_plan(n, c, width, f, k, x.dtype.itemsize, CF.sm_count(x.device.id))
        part = cp.empty((plan.splits, plan.size), dtype=x.dtype)
        CF.launch("conv1d_direct.cu", "conv1d_direct_dw", x.dtype, plan.grid, plan.block,
                  (x, dy, part, K.i32(n), K.i32(c), K.i32(width), K.i32(f), K.i32(plan.per)),
                  KW=k, DW_C=plan.channels)
        sums = part[0]
        if plan.splits > 1:
            sums = cp.empty((plan.size,), dtype=x.dtype)
            CF.launch("splits.cu", "sum_splits", x.dtype, *G.sum_splits_grid(plan.size),
                      (part, sums, K.i32(plan.splits), K.i64(plan.size), K.i64(0), K.i32(1)))
        return sums[:f * c * k].reshape(f, c, k), sums[f * c * k:]

    @staticmethod
    def _fold_conv1d(dy):
        """dy [N, F, Wo] as the GEMM's [F, N*Wo]."""
        n, f, wo = dy.shape
        dyr = cp.empty((f, n * wo), dtype=dy.dtype)
        K.launch_rows("conv.cu", "fold", str(dy.dtype), f * n, wo,
                      (dy, dyr, K.i32(n), K.i32(f), K.i32(wo)))
        return dyr

    def _conv_param_grads(self, x, w, dy):
        """(dy folded to [F, N*Wo], dw, db)."""
        f, c, k = w.shape
        dyr = self._fold_conv1d(dy)
        cols = self._forward_cols(x, k)
        dw = B.matmul(dyr, cols, trans_b=True).reshape(f, c, k)                        # one GEMM
        return dyr, dw, dyr.sum(axis=1)

    # -- pooling -------------------------------------------------------------------------

    def maxpool1d(self, x, size, stride):
        n, c, w = x.shape
        wo = (w - size) // stride + 1
        y = cp.empty((n, c, wo), dtype=x.dtype)
        argmax = cp.empty((n, c, wo), dtype=cp.int32)
        K.launch_rows("pool.cu", "maxpool_fwd", str(x.dtype), n * c, wo,
                      (x, y, argmax, K.i32(w), K.i32(wo), K.i32(size), K.i32(stride)))
        return y, argmax

    def maxpool1d_backward(self, dy, argmax, width):
        # The op is not told size and stride, so overlapping windows are always
        # possible: scatter with atomicAdd into a zeroed dx (one memset, one pass).
        n, c, wo = dy.shape
        dx = cp.zeros((n, c, width), dtype=dy.dtype)
        K.launch_rows("pool.cu", "maxpool_bwd_scatter", str(dy.dtype), n * c, wo,
                      (dy, argmax, dx, K.i32(width), K.i32(wo)))
        return dx

    # -- global pooling ----------------------------------------------------------------

    def global_pool(self, x):
        n, c, w = x.shape
        y = cp.empty((n, 3 * c), dtype=x.dtype)
        argmax = cp.empty((n, c), dtype=cp.int32)
        K.launch("pool.cu", "global_pool_fwd", str(x.dtype), n * c,
                 (x, y, argmax, K.i32(n * c), K.i32(c), K.i32(w)), per_thread=32)
        return y, argmax

    def global_pool_backward(self, x, y, argmax, dy):
        n, c, w = x.shape
        dx = cp.empty_like(x)
        K.launch_rows("pool.cu", "global_pool_bwd", str(x.dtype), n * c, w,
                      (x, y, argmax, dy, dx, K.i32(c), K.i32(w)))
        return dx

    # -- dense ---------------------------------------------------------------------------

    def dense(self, x, w, b):
        y = B.matmul(x, w)
        y += b
        return y

    def dense_backward(self, x, w, dy):
        return B.matmul(dy, w, trans_b=True), B.matmul(x, dy, trans_a=True), dy.sum(axis=0)

    # -- activations -----------------------------------------------------------------------

    @staticmethod
    def _map(name: str, inputs: tuple, *scalars):
        """Run elementwise kernel ``name`` of elementwise.cu over ``inputs``; a new output."""
        x = inputs[0]
        out = cp.empty_like(x)
        K.launch("elementwise.cu", name, str(x.dtype), x.size,
                 inputs + (out, K.i64(x.size)) + tuple(x.dtype.type(v) for v in scalars))
        return out

    @staticmethod
    def _relu_vec(x, dy):
        """ReLU (dy None) or its gradient on 16-byte vectors; None where the size is not a
        whole number of vectors or an array does not start on a 16-byte boundary."""
        lanes = 16 // x.dtype.itemsize
        arrays = (x,) if dy is None else (x, dy)
        if x.size == 0 or x.size % lanes or any(a.data.ptr % 16 for a in arrays):
            return None
        out = cp.empty_like(x)
        name = "relu_fwd_vec" if dy is None else "relu_bwd_vec"
        K.launch("elementwise.cu", name, str(x.dtype), x.size // lanes,
                 arrays + (out, K.i64(x.size // lanes)))
        return out

    def activation(self, kind, x, slope=0.01):
        if kind == "relu":
            y = self._relu_vec(x, None)
            return self._map("relu_fwd", (x,)) if y is None else y
        if kind == "leaky_relu":
            return self._map("leaky_fwd", (x,), slope)
        if kind in ("sigmoid", "tanh"):
            return self._map(f"{kind}_fwd", (x,))
        raise ValueError(f"unknown activation {kind!r}")

    def activation_backward(self, kind, x, y, dy, slope=0.01):
        if kind == "relu":
            dx = self._relu_vec(x, dy)
            return self._map("relu_bwd", (x, dy)) if dx is None else dx
        if kind == "leaky_relu":
            return self._map("leaky_bwd", (x, dy), slope)
        if kind in ("sigmoid", "tanh"):
            return self._map(f"{kind}_bwd", (y, dy))
        raise ValueError(f"unknown activation {kind!r}")

    # -- output ----------------------------------------------------------------------------

    def _softmax_rows(self, logits, labels):
        n, k = logits.shape
        probs = cp.empty_like(logits)
        nll = cp.empty((n,), dtype=logits.dtype)
        lab = labels if labels is not None else nll          # unused pointer when no labels
        K.launch("softmax.cu", "softmax_rows", str(logits.dtype), n,
                 (logits, lab, probs, nll, K.i32(n), K.i32(k), K.i32(labels is not None)),
                 per_thread=32)
        return probs, nll

    def softmax(self, logits):
        return self._softmax_rows(logits, None)[0]

    def softmax_cross_entropy(self, logits, labels):
        probs, nll = self._softmax_rows(logits, labels)
        return float(nll.mean()), probs

    def softmax_cross_entropy_backward(self, probs, labels):
        n, k = probs.shape
        g = cp.empty_like(probs)
        K.launch_rows("softmax.cu", "softmax_ce_bwd", str(probs.dtype), n, k,
                      (probs, labels, g, K.i32(k), probs.dtype.type(1.0 / n)))
        return g

    # -- updates (fused, in place) ---------------------------------------------------------

    def sgd_update(self, param, grad, velocity, lr, momentum, weight_decay):
        t = param.dtype.type
        K.launch("elementwise.cu", "sgd_update", str(param.dtype), param.size,
                 (param, grad, velocity, K.i64(param.size), t(lr), t(momentum),
                  t(lr * weight_decay)))

    def adam_update(self, param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay,
                    decoupled_weight_decay=0.0):
        t = param.dtype.type
        K.launch("elementwise.cu", "adam_update", str(param.dtype), param.size,
                 (param, grad, m, v, K.i64(param.size), t(lr), t(beta1), t(1 - beta1), t(beta2),
                  t(1 - beta2), t(eps), t(weight_decay), t(1 - beta1 ** step),
                  t(1 - beta2 ** step), t(decoupled_weight_decay)))
