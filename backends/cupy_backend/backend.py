"""CuPy implementation of the op contract (see :mod:`genrecnn.engine.ops`).

Matrix work is cuBLAS (through :mod:`.blas`, which graph capture allows); everything else
is a kernel of :mod:`genrecnn.backends.cuda_kernels`, the files PyCUDA runs, launched
through :mod:`.kernels`, so a step never leaves the GPU. Each op group is in the module
of the contract's name (:mod:`.sequence`, :mod:`.maps`, :mod:`.updates`,
:mod:`.training`, :mod:`.graphs`, :mod:`.staging`, :mod:`.collective`, :mod:`.fused`);
this class holds the transfers and the column-matrix cache the convolutions share
(:class:`.host.CupyHost`). Inputs are
C-contiguous (the contract says so), so no op copies defensively. Importing this module
needs no CuPy, driver or GPU; :meth:`CupyBackend.availability` says why it cannot run.
"""
from __future__ import annotations

import weakref

import numpy as np

from genrecnn.backends.cuda_kernels.collective import CollectiveOps
from genrecnn.backends.cuda_kernels.fused import FusedBlockOps
from genrecnn.backends.cuda_kernels.lowp import LowPrecisionProducts
from genrecnn.backends.cuda_kernels.maps import PoolNormDropoutOps
from genrecnn.backends.cuda_kernels.sequence import PoolSoftmaxOps
from genrecnn.backends.cuda_kernels.training import ResidentBatchOps
from genrecnn.backends.cuda_kernels.updates import ParameterUpdateOps
from genrecnn.engine.ops import Backend

from . import kernels as K
from .graphs import CupyGraphOps
from .maps import CupyMapOps
from .sequence import CupySequenceOps
from .staging import CupyStaging
from .training import CupyTrainingOps

try:  # CuPy stays optional: the class must be importable (and listed) without it
    import cupy as cp
except Exception:  # ImportError, or a broken CUDA install raising at import
    cp = None

_CUDA_ERROR_NO_DEVICE = 100


class CupyBackend(CupySequenceOps, CupyMapOps, CupyTrainingOps, CupyGraphOps,
                  CupyStaging, CollectiveOps, LowPrecisionProducts, FusedBlockOps,
                  ResidentBatchOps, ParameterUpdateOps, PoolNormDropoutOps, PoolSoftmaxOps,
                  Backend):
    name = "cupy"
    device = "cuda"
    dtypes = ("float32", "float64")
    precisions = ("fp32", "tf32", "bf16")      # tf32/bf16: mma.cu's tensor cores

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

    def reshape(self, x, shape):
        return x.reshape(tuple(int(s) for s in shape))

    # -- the primitives of the launches planned once for both CUDA backends ------------------
    # (:mod:`genrecnn.backends.cuda_kernels.device`)

    @staticmethod
    def _dev_empty(shape, dtype):
        return cp.empty(shape, dtype)

    @staticmethod
    def _dev_launch(file, name, arg_types, dtype, grid, block, args, consts):
        dt = np.dtype(dtype)
        typed = {"P": lambda a: K.NULL if a is None else a, "i": np.int32, "q": np.int64,
                 "I": np.uint32, "T": dt.type}
        K.launch(file, name, dt, grid, block,
                 tuple(typed[t](a) for t, a in zip(arg_types, args)), **consts)

    @staticmethod
    def _dev_ptr(a) -> int:
        return a.data.ptr

    @staticmethod
    def _dev_stream() -> int:
        return cp.cuda.get_current_stream().ptr

    @staticmethod
    def _dev_sm_count() -> int:
        return K.current_sm_count()

    @staticmethod
    def _dev_compute_capability() -> tuple[int, int]:
        return K.compute_capability()

    # -- the column matrices a convolution's backward reuses -------------------------------

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
