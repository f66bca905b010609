"""Compiling and launching the CUDA files that both CUDA backends share.

The 2-D map, batch-norm, batch and loss kernels are written once, in ``.cu`` files
beside the PyCUDA backend (see :mod:`genrecnn.backends.pycuda_backend.grids`); here
CuPy builds them with NVRTC: one ``RawModule`` per (file, dtype, compile-time
constants), ``T`` fixed by a typedef as in :mod:`.kernels`. Launches go to CuPy's
current stream and never wait. Importing this module needs no CuPy.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

KERNEL_PACKAGE = "genrecnn.backends.pycuda_backend"
_CTYPE = {"float32": "float", "float64": "double"}


def source(file: str, dtype: str, consts: tuple[tuple[str, int], ...] = ()) -> str:
    """The NVRTC source of ``file`` for ``dtype``, with ``consts`` as #defines."""
    text = resources.files(KERNEL_PACKAGE).joinpath(file).read_text()
    head = [f"typedef {_CTYPE[dtype]} T;"] + [f"#define {k} {int(v)}" for k, v in consts]
    return "\n".join(head) + "\n" + text


@lru_cache(maxsize=None)
def _module(file: str, dtype: str, consts: tuple[tuple[str, int], ...]):
    import cupy as cp
    return cp.RawModule(code=source(file, dtype, consts), options=("--std=c++14",))


@lru_cache(maxsize=None)
def kernel(file: str, name: str, dtype: str, consts: tuple[tuple[str, int], ...] = ()):
    """The compiled kernel ``name`` of ``file`` (one NVRTC build per module, cached)."""
    return _module(file, dtype, consts).get_function(name)


def launch(file: str, name: str, dtype: str, grid, block, args: tuple, **consts) -> None:
    """Launch ``name`` on the current stream; an empty grid launches nothing."""
    if min(grid) <= 0:
        return
    kernel(file, name, str(dtype), tuple(sorted(consts.items())))(tuple(grid), tuple(block),
                                                                  args)


@lru_cache(maxsize=None)
def sm_count(device_id: int) -> int:
    """Streaming multiprocessors of a device (asked once; no device work)."""
    import cupy as cp
    return int(cp.cuda.Device(device_id).attributes["MultiProcessorCount"])
