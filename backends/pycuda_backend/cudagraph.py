"""CUDA graphs for PyCUDA through the driver API (ctypes on libcuda).

PyCUDA 2026.1 has no graph API; the driver's stream capture is five calls.
Capture runs in relaxed mode, so the memory pool may still allocate while a
step is recorded.
"""
from __future__ import annotations

import ctypes
from functools import lru_cache

_RELAXED = 2     # CU_STREAM_CAPTURE_MODE_RELAXED


@lru_cache(maxsize=1)
def _lib():
    lib = ctypes.CDLL("libcuda.so.1")
    vp = ctypes.c_void_p
    lib.cuStreamBeginCapture_v2.argtypes = [vp, ctypes.c_int]
    lib.cuStreamEndCapture.argtypes = [vp, ctypes.POINTER(vp)]
    lib.cuGraphInstantiateWithFlags.argtypes = [ctypes.POINTER(vp), vp, ctypes.c_ulonglong]
    lib.cuGraphLaunch.argtypes = [vp, vp]
    lib.cuGraphExecDestroy.argtypes = [vp]
    lib.cuGraphDestroy.argtypes = [vp]
    return lib


def _check(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"{what} failed with CUDA driver error {status}")


def begin_capture(stream_handle: int) -> None:
    _check(_lib().cuStreamBeginCapture_v2(ctypes.c_void_p(stream_handle), _RELAXED),
           "cuStreamBeginCapture")


class Graph:
    """An instantiated graph; destroyed with this object."""

    def __init__(self, stream_handle: int):
        lib = _lib()
        self._graph, self._exec = ctypes.c_void_p(), ctypes.c_void_p()
        _check(lib.cuStreamEndCapture(ctypes.c_void_p(stream_handle), ctypes.byref(self._graph)),
               "cuStreamEndCapture")
        _check(lib.cuGraphInstantiateWithFlags(ctypes.byref(self._exec), self._graph, 0),
               "cuGraphInstantiate")

    def launch(self, stream_handle: int) -> None:
        _check(_lib().cuGraphLaunch(self._exec, ctypes.c_void_p(stream_handle)), "cuGraphLaunch")

    def __del__(self):
        try:
            lib = _lib()
            if self._exec:
                lib.cuGraphExecDestroy(self._exec)
            if self._graph:
                lib.cuGraphDestroy(self._graph)
        except Exception:   # interpreter shutdown: the context is gone with the graph
            pass
