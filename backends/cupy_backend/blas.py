"""cuBLAS GEMMs for the CuPy backend through a thin ctypes binding.

CuPy refuses any cuBLAS call while a stream is being captured into a CUDA
graph (its ``cublas.setStream`` raises NotImplementedError), although cuBLAS
itself supports capture. Whole training steps are captured as graphs, so the
backend calls ``cublas{S,D}gemm_v2`` itself: one handle per process, an
explicit workspace (so that nothing is allocated during a capture), the
stream set to CuPy's current stream on every call, and the default math mode
(no TF32 unless ``CUPY_TF32=1``, as for CuPy's own handles).
"""
from __future__ import annotations

import ctypes
import os
from functools import lru_cache

_LIBS = ("libcublas.so.13", "libcublas.so.12", "libcublas.so")
_WORKSPACE = 32 << 20
_TF32_MATH = 3       # CUBLAS_TF32_TENSOR_OP_MATH


def gemm_args(a_shape, b_shape, trans_a: bool, trans_b: bool):
    """The column-major cuBLAS call that computes row-major ``C = op(A) @ op(B)``:
    (transb, transa, n, m, k, ldb, lda, ldc), where op transposes when asked.

    A row-major [r, c] array is a column-major [c, r] one with leading
    dimension c, so C^T = op(B)^T op(A)^T is one column-major GEMM with the
    operands swapped and no copy.
    """
    m, k = (a_shape[1], a_shape[0]) if trans_a else (a_shape[0], a_shape[1])
    kb, n = (b_shape[1], b_shape[0]) if trans_b else (b_shape[0], b_shape[1])
    if k != kb:
        raise ValueError(f"gemm: inner sizes differ ({a_shape}, {b_shape}, "
                         f"trans {trans_a}, {trans_b})")
    return int(trans_b), int(trans_a), n, m, k, b_shape[1], a_shape[1], n


@lru_cache(maxsize=1)
def _library():
    import cupy
    import cupy_backends.cuda.libs.cublas  # noqa: F401  (loads libcublas into the process)
    cupy.cuda.Device().use()
    for name in _LIBS:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        raise OSError(f"libcublas not found (tried {', '.join(_LIBS)})")
    vp, i, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    lib.cublasCreate_v2.argtypes = [ctypes.POINTER(vp)]
    lib.cublasSetStream_v2.argtypes = [vp, vp]
    lib.cublasSetWorkspace_v2.argtypes = [vp, vp, sz]
    lib.cublasSetMathMode.argtypes = [vp, i]
    for fn in (lib.cublasSgemm_v2, lib.cublasDgemm_v2):
        fn.argtypes = [vp, i, i, i, i, i, vp, vp, i, vp, i, vp, vp, i]
    handle = vp()
    _check(lib.cublasCreate_v2(ctypes.byref(handle)), "cublasCreate")
    workspace = cupy.empty(_WORKSPACE, dtype=cupy.uint8)
    _check(lib.cublasSetWorkspace_v2(handle, workspace.data.ptr, _WORKSPACE), "cublasSetWorkspace")
    if os.environ.get("CUPY_TF32") == "1":
        _check(lib.cublasSetMathMode(handle, _TF32_MATH), "cublasSetMathMode")
    scalars = {d: (ctypes.c_float(1.0), ctypes.c_float(0.0)) if d == "float32"
               else (ctypes.c_double(1.0), ctypes.c_double(0.0)) for d in ("float32", "float64")}
    return lib, handle, workspace, scalars


def _check(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"{what} failed with cuBLAS status {status}")


def matmul(a, b, trans_a: bool = False, trans_b: bool = False, out=None):
    """``op(a) @ op(b)`` for C-contiguous 2-D CuPy arrays of one float dtype, on CuPy's
    current stream (capturable)."""
    import cupy
    lib, handle, _, scalars = _library()
    transb, transa, n, m, k, ldb, lda, ldc = gemm_args(a.shape, b.shape, trans_a, trans_b)
    dtype = str(a.dtype)
    if out is None:
        out = cupy.empty((m, n), dtype=a.dtype)
    if m == 0 or n == 0:
        return out
    if k == 0:
        out.fill(0)
        return out
    one, zero = scalars[dtype]
    fn = lib.cublasSgemm_v2 if dtype == "float32" else lib.cublasDgemm_v2
    _check(lib.cublasSetStream_v2(handle, cupy.cuda.get_current_stream().ptr), "cublasSetStream")
    _check(fn(handle, transb, transa, n, m, k, ctypes.addressof(one), b.data.ptr, ldb,
              a.data.ptr, lda, ctypes.addressof(zero), out.data.ptr, ldc), "cublas gemm")
    return out
