"""PyCUDA: the collective op (:mod:`genrecnn.engine.ops.collective`): every gradient
scaled into one fused buffer (``collective.cu``), one NCCL all-reduce, device copies
back; all on the backend's stream, so a captured step holds it."""
from __future__ import annotations

from genrecnn.backends.cuda_kernels.nccl import nccl_sum_in_place

from .host import HostBase

_FILE = "collective.cu"


class PycudaCollectiveOps(HostBase):
    """sum_across for :class:`.PycudaBackend` (listed before ``Backend``)."""

    _fused = None            # the fused buffer, kept for the next step (and its graph)

    def sum_across(self, arrays, weight, world):
        if not arrays:
            return None
        dt = str(arrays[0].dtype)
        if world.comm is None:
            for a in arrays:
                self._elementwise("scale_into", "PPTq", dt, a.size, self._ptr(a), self._ptr(a),
                                  float(weight), a.size, file=_FILE)
            return None
        total = sum(int(a.size) for a in arrays)
        if self._fused is None or self._fused.size != total or str(self._fused.dtype) != dt:
            self._fused = self._empty((total,), dt)
        base, item, start = self._ptr(self._fused), self._fused.dtype.itemsize, 0
        for a in arrays:
            self._elementwise("scale_into", "PPTq", dt, a.size, self._ptr(a),
                              base + start * item, float(weight), a.size, file=_FILE)
            start += a.size
        nccl_sum_in_place(world, base, total, dt, self._stream_handle() or 0)
        start = 0
        for a in arrays:
            if a.nbytes:
                self._drv.memcpy_dtod_async(self._ptr(a), base + start * item, a.nbytes,
                                            self._stream)
            start += a.size
        return None
