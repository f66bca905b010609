"""The PyCUDA backend: every op of the contract as a hand-written CUDA kernel.

Kernels live in the ``.cu`` files beside this module (see :mod:`.kernels` for
how they are compiled and cached); the GEMM-based ops (conv1d, dense) are in
:mod:`.gemm`. Inputs are C-contiguous with consistent shapes and dtypes (the
contract's rules), so ops neither copy nor check them. Arrays are
``pycuda.gpuarray.GPUArray`` allocated from one memory pool; the backend works
in the device's *primary* context (``pycuda.autoprimaryctx``), the one CuPy
uses, so arrays cross between the two without copies. Everything runs on one
stream (the default one, or a stream of its own while training steps are
captured as graphs, :mod:`.graphs`), so launches are ordered and only
``to_host`` and ``synchronize`` wait.

Importing this module needs neither PyCUDA nor a GPU: PyCUDA is imported when
the backend is instantiated, after :meth:`PycudaBackend.availability` said yes.
"""
from __future__ import annotations

import atexit
import importlib.util
import shutil

import numpy as np

from genrecnn.engine.ops import ACTIVATIONS, Backend, maxpool1d_out_width

from .batches import PycudaBatchOps
from .graphs import PycudaGraphOps
from .gemm import GemmOps
from . import grids as G
from .grids import THREADS as BLOCK, cdiv
from .kernels import KernelCache
from .maps import PycudaMapOps
from .staging import PycudaStaging

_ACT_CODE = {kind: i for i, kind in enumerate(ACTIVATIONS)}


def probe() -> tuple[bool, str]:
    """Can this machine run the backend? Never raises; the reason says what is missing."""
    try:
        if importlib.util.find_spec("pycuda") is None:
            return False, "pycuda not installed (pip install 'genrecnn[pycuda]')"
    except Exception as exc:  # a broken installation is a reason too
        return False, f"pycuda not importable: {exc}"
    try:
        import pycuda.driver as drv
    except Exception as exc:
        if "libcuda" in str(exc):
            return False, "no CUDA driver (libcuda not found)"
        return False, f"pycuda failed to import: {type(exc).__name__}: {exc}"
    try:
        drv.init()
    except Exception as exc:
        return False, f"no CUDA driver: {exc}"
    try:
        count = drv.Device.count()
    except Exception as exc:
        return False, f"no CUDA GPU found: {exc}"
    if count == 0:
        return False, "no CUDA GPU found"
    if shutil.which("nvcc") is None:
        return False, "nvcc not found on PATH (PyCUDA compiles the kernels with it)"
    return True, ""


class PycudaBackend(PycudaGraphOps, PycudaMapOps, PycudaBatchOps, GemmOps, PycudaStaging,
                    Backend):
    """Hand-written CUDA kernels through PyCUDA, float32 and float64."""

    name = "pycuda"
    device = "cuda"
    dtypes = ("float32", "float64")

    @classmethod
    def availability(cls):
        return probe()

    def __init__(self):
        import pycuda.autoprimaryctx as primary   # never autoinit: share CuPy's context
        import pycuda.driver as drv
        import pycuda.gpuarray as gpuarray
        import pycuda.tools

        self._drv = drv
        self._GPUArray = gpuarray.GPUArray
        self._pool = pycuda.tools.DeviceMemoryPool()
        self.kernels = KernelCache()
        self.sm_count = primary.device.get_attribute(drv.device_attribute.MULTIPROCESSOR_COUNT)
        # Runs before autoprimaryctx pops the context (atexit is last-in, first-out).
        atexit.register(self._release_pool)

    def _release_pool(self) -> None:
        try:
            self._pool.stop_holding()
        except Exception:  # interpreter shutdown: nothing useful to report
            pass

    # -- helpers ---------------------------------------------------------------------------

    def _empty(self, shape, dtype):
        return self._GPUArray(tuple(int(s) for s in shape), np.dtype(dtype),
                              allocator=self._pool.allocate)

    @staticmethod
    def _ptr(a) -> int:
        return 0 if a.gpudata is None else int(a.gpudata)

    def _zero_fill(self, a) -> None:
        if a.nbytes:
            self._drv.memset_d8_async(self._ptr(a), 0, a.nbytes, self._stream)

    def _grid1d(self, n: int) -> tuple[int, int, int]:
        return (G.flat_blocks(n, self.sm_count), 1, 1)

    def _launch(self, file, name, arg_types, dtype, grid, block, *args, **consts):
        func = self.kernels.get(file, name, arg_types, dtype, **consts)
        func.prepared_async_call(grid, block, self._stream, *args)

    def _elementwise(self, name, arg_types, dtype, n, *args, file="elementwise.cu", **consts):
        if n:
            self._launch(file, name, arg_types, dtype, self._grid1d(n), (BLOCK, 1, 1), *args,
                         **consts)

    # -- moving arrays ---------------------------------------------------------------------

    def from_host(self, a):
        a = np.ascontiguousarray(a)
        out = self._empty(a.shape, a.dtype)
        if a.nbytes:
            self._settle()
            self._drv.memcpy_htod(self._ptr(out), a)
        return out

    def to_host(self, x):
        out = np.empty(tuple(x.shape), dtype=x.dtype)
        if out.nbytes:
            self._settle()
            self._drv.memcpy_dtoh(out, self._ptr(x))
        return out

    def zeros(self, shape, dtype):
        out = self._empty(shape, dtype)
        self._zero_fill(out)
        return out

    def adopt(self, x, source):
        """Wrap another CUDA backend's array in place (``__cuda_array_interface__``);
        non-contiguous ones are copied on the device; host arrays go through from_host."""
        if isinstance(x, self._GPUArray) and x.flags.c_contiguous:
            return x
        cai = getattr(x, "__cuda_array_interface__", None)
        if cai is None:
            return super().adopt(x, source)
        shape = tuple(int(s) for s in cai["shape"])
        dtype = np.dtype(cai["typestr"])
        ptr = int(cai["data"][0])
        stream = cai.get("stream")
        if stream not in (None, 1, 2, self._stream_handle()):   # may not order with ours: wait
            self._drv.Context.synchronize()
        contiguous = [dtype.itemsize]
        for extent in reversed(shape[1:]):
            contiguous.insert(0, contiguous[0] * extent)
        strides = cai.get("strides")
        if strides is None or all(s == c for s, c, e in zip(strides, contiguous, shape) if e > 1):
            return self._GPUArray(shape, dtype, gpudata=ptr, base=x)
        out = self._empty(shape, dtype)
        n = out.size
        if n:
            dims = self.from_host(np.array(list(shape) + list(strides), dtype=np.int64))
            self._elementwise("strided_copy", "PPqiiP", "float32", n, ptr, self._ptr(out), n,
                              len(shape), dtype.itemsize, self._ptr(dims))
        return out

    def synchronize(self):
        self._drv.Context.synchronize()

    # -- pooling ---------------------------------------------------------------------------

    def maxpool1d(self, x, size, stride):
        dt = str(x.dtype)
        n, c, width = x.shape
        wo = maxpool1d_out_width(width, size, stride)
        y = self._empty((n, c, wo), dt)
        am = self._empty((n, c, wo), np.int32)
        self._elementwise("maxpool_fwd", "PPPqiiii", dt, y.size, self._ptr(x), self._ptr(y),
                          self._ptr(am), n * c, width, wo, int(size), int(stride), file="pool.cu")
        return y, am

    def maxpool1d_backward(self, dy, argmax, width):
        dt = str(dy.dtype)
        n, c, wo = dy.shape
        dx = self.zeros((n, c, width), dt)
        self._elementwise("maxpool_bwd", "PPPqii", dt, dy.size, self._ptr(dy), self._ptr(argmax),
                          self._ptr(dx), n * c, int(width), wo, file="pool.cu")
        return dx

    def global_pool(self, x):
        dt = str(x.dtype)
        n, c, width = x.shape
        y = self._empty((n, 3 * c), dt)
        am = self._empty((n, c), np.int32)
        rows = n * c
        if rows:
            self._launch("pool.cu", "global_pool_fwd", "PPPiii", dt,
                         (cdiv(rows * 32, BLOCK), 1, 1), (BLOCK, 1, 1),
                         self._ptr(x), self._ptr(y), self._ptr(am), n, c, width)
        return y, am

    def global_pool_backward(self, x, y, argmax, dy):
        dt = str(x.dtype)
        n, c, width = x.shape
        dx = self._empty((n, c, width), dt)
        self._elementwise("global_pool_bwd", "PPPPPiii", dt, dx.size, self._ptr(x), self._ptr(y),
                          self._ptr(argmax), self._ptr(dy), self._ptr(dx), n, c, width,
                          file="pool.cu")
        return dx

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

    # -- output ----------------------------------------------------------------------------

    def _softmax_into(self, logits, labels):
        dt = str(logits.dtype)
        n, k = logits.shape
        probs = self._empty((n, k), dt)
        rowloss = self._empty((n,), dt) if labels is not None else None
        if probs.size:
            self._launch("softmax.cu", "softmax_fwd", "PPPPii", dt,
                         (cdiv(n * 32, BLOCK), 1, 1), (BLOCK, 1, 1),
                         self._ptr(logits), 0 if labels is None else self._ptr(labels),
                         self._ptr(probs), 0 if rowloss is None else self._ptr(rowloss), n, k)
        return probs, rowloss

    def softmax(self, logits):
        return self._softmax_into(logits, None)[0]

    def softmax_cross_entropy(self, logits, labels):
        probs, rowloss = self._softmax_into(logits, labels)
        n = probs.shape[0]
        if n == 0 or probs.shape[1] == 0:
            return float("nan"), probs
        total = self._empty((1,), probs.dtype)
        self._launch("reduce.cu", "sum_all", "PPq", str(probs.dtype), (1, 1, 1), (BLOCK, 1, 1),
                     self._ptr(rowloss), self._ptr(total), n)
        return float(self.to_host(total)[0]) / n, probs

    def softmax_cross_entropy_backward(self, probs, labels):
        dt = str(probs.dtype)
        n, k = probs.shape
        g = self._empty((n, k), dt)
        self._elementwise("softmax_xent_bwd", "PPPii", dt, g.size, self._ptr(probs),
                          self._ptr(labels), self._ptr(g), n, k, file="softmax.cu")
        return g

    # -- updates ---------------------------------------------------------------------------

    def sgd_update(self, param, grad, velocity, lr, momentum, weight_decay):
        n = param.size
        self._elementwise("sgd_update", "PPPqTTT", str(param.dtype), n, self._ptr(param),
                          self._ptr(grad), self._ptr(velocity), n, float(lr), float(momentum),
                          float(lr) * float(weight_decay))

    def adam_update(self, param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay,
                    decoupled_weight_decay=0.0):
        b1, b2, n = float(beta1), float(beta2), param.size
        self._elementwise("adam_update", "PPPPqTTTTTTTTTT", str(param.dtype), n, self._ptr(param),
                          self._ptr(grad), self._ptr(m), self._ptr(v), n, float(lr),
                          b1, 1.0 - b1, b2, 1.0 - b2, float(eps), float(weight_decay),
                          1.0 - b1 ** step, 1.0 - b2 ** step, float(decoupled_weight_decay))
