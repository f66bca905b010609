"""PyCUDA: every parameter updated in one launch, and whole steps captured as CUDA graphs.

The backend issues all its work on ``self._stream`` (None: the default stream,
as before). For a graph it makes a non-blocking stream of its own (it cannot
launch on another library's stream, so it owns the shared one), and while a
step is recorded it allocates from a private pool kept alive with the graph.
"""
from __future__ import annotations

import numpy as np

from . import cudagraph
from . import grids as G

_NON_BLOCKING = 1    # CU_STREAM_NON_BLOCKING


class PycudaGraphOps:
    """update_many and graph for :class:`.PycudaBackend` (listed before ``Backend``)."""

    _stream = None

    def _stream_handle(self) -> int | None:
        return None if self._stream is None else int(self._stream.handle)

    # -- all parameters in one launch ---------------------------------------------------

    def _update_many(self, name: str, arrays: list[list], hyper) -> None:
        params = arrays[0]
        if not params:
            return
        dt = str(params[0].dtype)
        sizes = [int(p.size) for p in params]
        arg_types = "P" * (4 * G.UPDATE_SLOTS) + "q" * G.UPDATE_SLOTS + "P"
        for first, last, grid in G.update_launches(sizes, self.sm_count):
            args = G.update_args(arrays, sizes, first, last)
            self._launch("update_many.cu", name, arg_types, dt, grid, (G.THREADS, 1, 1),
                         *[self._ptr(a) for a in args[:4 * G.UPDATE_SLOTS]],
                         *args[4 * G.UPDATE_SLOTS:], self._ptr(hyper))

    def sgd_update_many(self, params, grads, velocities, hyper):
        self._update_many("sgd_many", [params, grads, velocities, velocities], hyper)

    def adam_update_many(self, params, grads, ms, vs, hyper):
        self._update_many("adam_many", [params, grads, ms, vs], hyper)

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

    def write(self, dst, a):
        a = np.ascontiguousarray(a, dtype=dst.dtype)
        if a.nbytes:
            self._drv.memcpy_htod_async(self._ptr(dst), a, self._stream)
