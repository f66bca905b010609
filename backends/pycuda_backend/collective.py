"""PyCUDA: the collective op (:mod:`genrecnn.engine.ops.collective`): the gradients scaled
into one fused buffer, one NCCL all-reduce, and back (``collective.cu``, up to 32
gradients a launch); all on the backend's stream, so a captured step holds it."""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.nccl import nccl_sum_in_place

from .host import HostBase

_FILE = "collective.cu"
_MANY = "P" * G.UPDATE_SLOTS + "q" * G.UPDATE_SLOTS + "PTi"


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
        self._copy_many(arrays, float(weight), 1)
        nccl_sum_in_place(world, self._ptr(self._fused), total, dt, self._stream_handle() or 0)
        self._copy_many(arrays, 1.0, 0)
        return None

    def _copy_many(self, arrays, weight: float, into_fused: int) -> None:
        """Every array to (``into_fused``: scaled by ``weight``) or from its place in the
        fused buffer."""
        sizes = [int(a.size) for a in arrays]
        base, item, start = self._ptr(self._fused), self._fused.dtype.itemsize, 0
        for first, last, grid in G.update_launches(sizes, self.sm_count):
            args = G.update_args([arrays], sizes, first, last)
            self._launch(_FILE, "fused_copy_many", _MANY, str(self._fused.dtype), grid,
                         (G.THREADS, 1, 1), *[self._ptr(a) for a in args[:G.UPDATE_SLOTS]],
                         *args[G.UPDATE_SLOTS:], base + start * item, weight, into_fused)
            start += sum(sizes[first:last])
