"""PyCUDA: the staging ops (:mod:`genrecnn.engine.ops.staging`): page-locked host buffers
(``pagelocked_empty``) and uploads on a non-blocking side stream of the backend's own,
ordered against ``self._stream`` (the compute stream: None for the default stream, or
the stream a captured step shares, see :mod:`.graphs`) with events.

PyCUDA has no handle on the default stream to make it wait for an event, so there
:meth:`PycudaStaging.await_upload` waits on the host for the copy instead; the copy
still overlaps the step queued before it.
"""
from __future__ import annotations

import math

import numpy as np

from genrecnn.engine.ops.staging import Upload

from .graphs import _NON_BLOCKING
from .host import HostBase


class PycudaStaging(HostBase):
    """Streamed uploads for :class:`.PycudaBackend` (listed before ``Backend``)."""

    _side = None

    def _side_stream(self):
        if self._side is None:    # non-blocking: never ordered with the default stream implicitly
            self._side = self._drv.Stream(flags=_NON_BLOCKING)
        return self._side

    def _event(self):
        return self._drv.Event(int(self._drv.event_flags.DISABLE_TIMING))

    def pinned_empty(self, shape, dtype):
        shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        if math.prod(shape) == 0:
            return np.empty(shape, dtype=dtype)
        return self._drv.pagelocked_empty(shape, dtype)

    def upload_async(self, host, dst):
        side = self._side_stream()
        queued = self._event()
        queued.record(self._stream)                     # the compute queued so far
        side.wait_for_event(queued)
        if host.nbytes:
            self._drv.memcpy_htod_async(self._ptr(dst), host, side)
        done = self._event()
        done.record(side)
        return Upload(done, queued, host)

    def await_upload(self, token):
        if self._stream is None:
            token.done.synchronize()
        else:
            self._stream.wait_for_event(token.done)

    def upload_finished(self, token):
        token.done.synchronize()
