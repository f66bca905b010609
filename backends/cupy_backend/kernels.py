"""Compiling and launching the CuPy backend's hand-written kernels (the ``.cu`` files here).

The matrix work goes to cuBLAS (:mod:`.blas`); the kernels do the
memory-bound rest: ``conv.cu`` (im2col, col2im, re-ordering), ``pool.cu``,
``softmax.cu`` and ``elementwise.cu`` (activations, fused optimiser updates).
A file is compiled once per dtype with ``cupy.RawModule`` (NVRTC) after a
prelude that fixes the dtype and the shared helpers of ``common.cu``; any
module of this package (or a new ``.cu`` file beside them) loads its kernels
through :func:`module` / :func:`kernel` and launches them with the helpers
below. Row kernels run on 2-D grids with 32-bit index arithmetic; warp-per-row
reductions loop grid-stride. This module imports without CuPy: compiling
happens on first use.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

_CTYPE = {"float32": "float", "float64": "double"}
_VEC = {"float32": ("float4", 4), "float64": ("double2", 2)}   # 16-byte vectors
_NEG_INF = {"float32": "__int_as_float(0xff800000)",
            "float64": "__longlong_as_double(0xfff0000000000000LL)"}

THREADS = 256
_MAX_BLOCKS = 132 * 32          # enough to fill an H100 many times over; loops cover the rest


def prelude(dtype: str) -> str:
    """The defines every file is compiled with: ``T``, its 16-byte vector ``V`` of
    ``VN`` lanes, and ``NEG_INF``."""
    vec, lanes = _VEC[dtype]
    return (f"typedef {_CTYPE[dtype]} T;\ntypedef {vec} V;\n#define VN {lanes}\n"
            f"#define NEG_INF {_NEG_INF[dtype]}\n")


def source(file: str, dtype: str) -> str:
    """The full CUDA source of ``file`` for ``dtype``: prelude, common.cu, the file."""
    pkg = resources.files(__package__)
    return prelude(dtype) + (pkg / "common.cu").read_text() + "\n" + (pkg / file).read_text()


@lru_cache(maxsize=None)
def module(file: str, dtype: str):
    """``file`` compiled for ``dtype`` (one NVRTC build per file and dtype, cached)."""
    import cupy as cp
    return cp.RawModule(code=source(file, dtype), options=("--std=c++14",))


@lru_cache(maxsize=None)
def kernel(file: str, name: str, dtype: str):
    """The compiled kernel ``name`` of ``file`` for ``dtype``."""
    return module(file, dtype).get_function(name)


def launch(file: str, name: str, dtype: str, total: int, args: tuple,
           per_thread: int = 1) -> None:
    """Launch a grid-stride kernel over ``total`` work items (``per_thread`` threads each)."""
    if total <= 0:
        return
    threads = total * per_thread
    blocks = min((threads + THREADS - 1) // THREADS, _MAX_BLOCKS)
    kernel(file, name, dtype)((blocks,), (THREADS,), args)


def launch_blocks(file: str, name: str, dtype: str, blocks: int, cols: int, args: tuple) -> None:
    """Launch one block per row, its threads looping over the row's ``cols``."""
    if blocks <= 0 or cols <= 0:
        return
    if blocks >= 2 ** 31:
        raise ValueError(f"array too large for one launch ({blocks} rows)")
    kernel(file, name, dtype)((blocks,), (min(THREADS, (cols + 31) // 32 * 32),), args)


def launch_rows(file: str, name: str, dtype: str, rows: int, cols: int, args: tuple) -> None:
    """Launch a row kernel: one block row per row, blocks of up to 256 threads across."""
    if rows <= 0 or cols <= 0:
        return
    threads = min(THREADS, (cols + 31) // 32 * 32)
    across = (cols + threads - 1) // threads
    if rows >= 2 ** 31 or across > 65535:
        raise ValueError(f"array too large for one launch ({rows} rows of {cols})")
    kernel(file, name, dtype)((rows, across), (threads,), args)


def i32(v: int) -> np.int32:
    return np.int32(v)


def i64(v: int) -> np.int64:
    return np.int64(v)
