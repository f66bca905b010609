"""PyCUDA: whole training steps captured as CUDA graphs (:mod:`genrecnn.engine.ops.graphs`).

The backend issues all its work on ``self._stream`` (None: the default stream,
as before). For a graph it makes a non-blocking stream of its own (it cannot
launch on another library's stream, so it owns the shared one), and while a
step is recorded it allocates from a private pool kept alive with the graph.
"""
from __future__ import annotations

from . import cudagraph
from .host import HostBase

_NON_BLOCKING = 1    # CU_STREAM_NON_BLOCKING


class PycudaGraphOps(HostBase):
    """graph (and the stream every op is issued on) for :class:`.PycudaBackend` (listed
    before ``Backend``)."""

    _stream = None

    def _stream_handle(self) -> int | None:
        return None if self._stream is None else int(self._stream.handle)

    # -- capture ------------------------------------------------------------------------

    def new_stream(self) -> int:
        self._stream = self._drv.Stream(flags=_NON_BLOCKING)
        return int(self._stream.handle)

    def use_stream(self, handle) -> bool:
        if handle is None:
            if self._stream is not None:
                self._stream.synchronize()
            self._stream = None
            return True
        return handle == self._stream_handle()

    def capture_begin(self, lead: bool) -> None:
        import pycuda.tools
        self._normal_pool, self._pool = self._pool, pycuda.tools.DeviceMemoryPool()
        if lead:
            cudagraph.begin_capture(self._stream_handle())

    def capture_end(self, lead: bool):
        try:
            graph = cudagraph.Graph(self._stream_handle()) if lead else None
        finally:
            private, self._pool = self._pool, self._normal_pool
        return graph, private

    def graph_launch(self, graph) -> None:
        graph[0].launch(self._stream_handle())

    # -- host copies that respect the stream ----------------------------------------------

    def _settle(self) -> None:
        """Wait for this backend's stream before a synchronous copy on the default one."""
        if self._stream is not None:
            self._stream.synchronize()
