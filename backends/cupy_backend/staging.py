"""CuPy: the staging ops (:mod:`genrecnn.engine.ops.staging`): page-locked host buffers
from CuPy's pinned pool, and uploads on a non-blocking side stream of the backend's own,
ordered against the compute stream (CuPy's current stream at the call: the default one,
or the stream a captured step shares) with events.
"""
from __future__ import annotations

import math

import numpy as np

from genrecnn.engine.ops.staging import Upload

from .host import HostBase

try:  # CuPy stays optional: the backend must import (and be listed) without it
    import cupy as cp
except Exception:  # ImportError, or a broken CUDA install raising at import
    cp = None


class CupyStaging(HostBase):
    """Streamed uploads for :class:`.CupyBackend` (listed before ``Backend``)."""

    _side = None

    def _side_stream(self):
        if self._side is None:    # non-blocking: never ordered with the default stream implicitly
            self._side = cp.cuda.Stream(non_blocking=True)
        return self._side

    def pinned_empty(self, shape, dtype):
        shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        count = math.prod(shape)
        if count == 0:
            return np.empty(shape, dtype=dtype)
        mem = cp.cuda.alloc_pinned_memory(count * dtype.itemsize)
        return np.frombuffer(mem, dtype, count).reshape(shape)   # the array keeps mem alive

    def upload_async(self, host, dst):
        side = self._side_stream()
        queued = cp.cuda.Event(disable_timing=True)
        queued.record(cp.cuda.get_current_stream())      # the compute queued so far
        side.wait_event(queued)
        if host.nbytes:
            cp.cuda.runtime.memcpyAsync(dst.data.ptr, host.ctypes.data, host.nbytes,
                                        cp.cuda.runtime.memcpyHostToDevice, side.ptr)
        done = cp.cuda.Event(disable_timing=True)
        done.record(side)
        return Upload(done, queued, host)

    def await_upload(self, token):
        cp.cuda.get_current_stream().wait_event(token.done)

    def upload_finished(self, token):
        token.done.synchronize()
