"""CuPy's side of the shared kernels (:mod:`genrecnn.backends.cuda_kernels`): each file
built with NVRTC through the one loader, and the launch helpers every op of this backend
uses. Launches go to CuPy's current stream and never wait; an empty grid launches
nothing. Importing this module needs no CuPy: compiling happens on first use.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.loader import ModuleCache, cupy_module

MODULES = ModuleCache(cupy_module)
NULL = np.uint64(0)          # a null pointer argument (a kernel's optional array)


@lru_cache(maxsize=None)
def kernel(file: str, name: str, dtype: str, consts: tuple[tuple[str, int], ...] = ()):
    """The compiled kernel ``name`` of ``file`` (one NVRTC build per module, cached)."""
    return MODULES.get(file, dtype, dict(consts)).get_function(name)


def launch(file: str, name: str, dtype, grid, block, args: tuple, **consts) -> None:
    """Launch ``name`` on the current stream with this grid and block."""
    if min(grid) <= 0:
        return
    kernel(file, name, str(dtype), tuple(sorted(consts.items())))(tuple(grid), tuple(block),
                                                                  args)


def launch_flat(file: str, name: str, dtype, total: int, args: tuple, **consts) -> None:
    """Launch a grid-stride kernel over ``total`` items (``grids.flat_blocks``)."""
    if total > 0:
        blocks = G.flat_blocks(total, current_sm_count())
        launch(file, name, dtype, (blocks, 1, 1), (G.THREADS, 1, 1), args, **consts)


def launch_blocks(file: str, name: str, dtype, blocks: int, cols: int, args: tuple) -> None:
    """Launch one block per row, its threads looping over the row's ``cols``."""
    if blocks <= 0 or cols <= 0:
        return
    if blocks >= 2 ** 31:
        raise ValueError(f"array too large for one launch ({blocks} rows)")
    launch(file, name, dtype, (blocks, 1, 1), (min(G.THREADS, G.cdiv(cols, 32) * 32), 1, 1),
           args)


def launch_rows(file: str, name: str, dtype, rows: int, cols: int, args: tuple) -> None:
    """Launch a ``ROW_COL`` kernel: one block row per row, blocks of up to 256 threads
    across (the kernel does not loop, so every column gets its thread)."""
    if rows <= 0 or cols <= 0:
        return
    threads = min(G.THREADS, G.cdiv(cols, 32) * 32)
    across = G.cdiv(cols, threads)
    if rows >= 2 ** 31 or across > G.MAX_GRID_Y:
        raise ValueError(f"array too large for one launch ({rows} rows of {cols})")
    launch(file, name, dtype, (rows, across, 1), (threads, 1, 1), args)


@lru_cache(maxsize=None)
def sm_count(device_id: int) -> int:
    """Streaming multiprocessors of a device (asked once; no device work)."""
    import cupy as cp
    return int(cp.cuda.Device(device_id).attributes["MultiProcessorCount"])


@lru_cache(maxsize=None)
def _capability(device_id: int) -> tuple[int, int]:
    import cupy as cp
    cc = int(cp.cuda.Device(device_id).compute_capability)       # "90" -> (9, 0)
    return cc // 10, cc % 10


def compute_capability() -> tuple[int, int]:
    """(major, minor) compute capability of the current device (asked once per device)."""
    import cupy as cp
    return _capability(cp.cuda.Device().id)


def current_sm_count() -> int:
    """Streaming multiprocessors of the current device."""
    import cupy as cp
    return sm_count(cp.cuda.Device().id)


def i32(v: int) -> np.int32:
    return np.int32(v)


def i64(v: int) -> np.int64:
    return np.int64(v)
