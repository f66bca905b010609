"""The PyCUDA backend: every op of the contract as a hand-written CUDA kernel.

Kernels live in :mod:`genrecnn.backends.cuda_kernels` (see :mod:`.kernels` for how
they are compiled and cached); each op group is in the module of the contract's name
(:mod:`.sequence`, :mod:`.maps`, :mod:`.updates`, :mod:`.training`, :mod:`.graphs`,
:mod:`.staging`, :mod:`.collective`, :mod:`.fused`), and this class holds the transfers
and the helpers those mixins use (:class:`.host.PycudaHost`). Inputs are C-contiguous
with consistent shapes and dtypes (the contract's rules), so ops neither copy nor check
them. Arrays are
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

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.grids import THREADS as BLOCK
from genrecnn.backends.cuda_kernels.collective import CollectiveOps
from genrecnn.backends.cuda_kernels.fused import FusedBlockOps
from genrecnn.backends.cuda_kernels.lowp import LowPrecisionProducts
from genrecnn.backends.cuda_kernels.maps import PoolNormDropoutOps
from genrecnn.backends.cuda_kernels.sequence import PoolSoftmaxOps
from genrecnn.backends.cuda_kernels.training import ResidentBatchOps
from genrecnn.backends.cuda_kernels.updates import ParameterUpdateOps
from genrecnn.engine.ops import Backend

from .gemm import GemmOps
from .graphs import PycudaGraphOps
from .kernels import KernelCache
from .maps import PycudaMapOps
from .sequence import PycudaSequenceOps
from .staging import PycudaStaging
from .training import PycudaTrainingOps


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


class PycudaBackend(PycudaSequenceOps, PycudaMapOps, PycudaTrainingOps,
                    PycudaGraphOps, PycudaStaging, CollectiveOps, GemmOps,
                    LowPrecisionProducts, FusedBlockOps, ResidentBatchOps, ParameterUpdateOps,
                    PoolNormDropoutOps, PoolSoftmaxOps, Backend):
    """Hand-written CUDA kernels through PyCUDA, float32 and float64."""

    name = "pycuda"
    device = "cuda"
    dtypes = ("float32", "float64")
    precisions = ("fp32", "tf32", "bf16")      # tf32/bf16: mma.cu's tensor cores

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
        self._cc = primary.device.compute_capability()
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

    def _run(self, file, name, arg_types, dtype, grid, block, *args, **consts):
        """``_launch`` unless the grid is empty."""
        if min(grid) > 0:
            self._launch(file, name, arg_types, dtype, grid, block, *args, **consts)

    def _elementwise(self, name, arg_types, dtype, n, *args, file="elementwise.cu", **consts):
        if n:
            self._launch(file, name, arg_types, dtype, self._grid1d(n), (BLOCK, 1, 1), *args,
                         **consts)

    # the primitives of the launches planned once for both CUDA backends
    # (:mod:`genrecnn.backends.cuda_kernels.device`)

    def _dev_empty(self, shape, dtype):
        return self._empty(shape, dtype)

    def _dev_launch(self, file, name, arg_types, dtype, grid, block, args, consts):
        args = [(0 if a is None else self._ptr(a)) if t == "P" else
                float(a) if t == "T" else a for t, a in zip(arg_types, args)]
        self._run(file, name, arg_types, str(np.dtype(dtype)), grid, block, *args, **consts)

    def _dev_ptr(self, a) -> int:
        return self._ptr(a)

    def _dev_stream(self) -> int:
        return self._stream_handle() or 0

    def _dev_sm_count(self) -> int:
        return self.sm_count

    def _dev_compute_capability(self) -> tuple[int, int]:
        return self._cc

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

    def reshape(self, x, shape):
        return x.reshape(tuple(int(s) for s in shape))

    def synchronize(self):
        self._drv.Context.synchronize()
