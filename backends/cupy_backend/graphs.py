"""CuPy: whole training steps captured as CUDA graphs (:mod:`genrecnn.engine.ops.graphs`).

Work goes to CuPy's current stream; for a graph the backend makes (or joins,
through the CUDA stream protocol) a non-blocking stream and makes it current.
While a step is recorded CuPy allocates from a private pool kept alive with
the graph. GEMMs go through :mod:`.blas`, because CuPy refuses cuBLAS calls
under capture.
"""
from __future__ import annotations

from .host import HostBase

try:  # CuPy stays optional: the backend must import (and be listed) without it
    import cupy as cp
except Exception:  # ImportError, or a broken CUDA install raising at import
    cp = None


class _StreamRef:
    """A raw stream handle offered through the CUDA stream protocol."""

    def __init__(self, handle: int):
        self.handle = int(handle)

    def __cuda_stream__(self):
        return 0, self.handle


class CupyGraphOps(HostBase):
    """graph for :class:`.CupyBackend` (listed before ``Backend``)."""

    _graph_stream = None

    # -- capture ------------------------------------------------------------------------

    def new_stream(self) -> int:
        self._graph_stream = cp.cuda.Stream(non_blocking=True)
        self._graph_stream.use()
        return int(self._graph_stream.ptr)

    def use_stream(self, handle) -> bool:
        if handle is None:
            cp.cuda.get_current_stream().synchronize()
            cp.cuda.Stream.null.use()
            self._graph_stream = None
            return True
        if self._graph_stream is None or int(self._graph_stream.ptr) != int(handle):
            self._graph_stream = cp.cuda.Stream.from_external(_StreamRef(handle))
        self._graph_stream.use()
        return True

    def capture_begin(self, lead: bool) -> None:
        self._capture_pool = cp.cuda.MemoryPool()
        self._normal_allocator = cp.cuda.get_allocator()
        cp.cuda.set_allocator(self._capture_pool.malloc)
        if lead:
            cp.cuda.get_current_stream().begin_capture()

    def capture_end(self, lead: bool):
        try:
            graph = cp.cuda.get_current_stream().end_capture() if lead else None
        finally:
            cp.cuda.set_allocator(self._normal_allocator)
        return graph, self._capture_pool

    def graph_launch(self, graph) -> None:
        graph[0].launch(stream=cp.cuda.get_current_stream())
