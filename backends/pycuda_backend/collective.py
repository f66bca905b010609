"""PyCUDA: the collective op (:mod:`genrecnn.engine.ops.collective`): every gradient
scaled into one fused buffer and the sums copied back (``collective.cu``, 32 gradients a
launch) around one NCCL all-reduce; all on the backend's stream, so a captured step
holds it."""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G
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
        fused = self._ptr(self._fused)
        self._fused_launches("scale_many_into", arrays, "PT", fused, float(weight))
        nccl_sum_in_place(world, fused, total, dt, self._stream_handle() or 0)
        self._fused_launches("copy_many_from", arrays, "P", fused)
        return None

    def _fused_launches(self, name: str, arrays: list, tail_types: str, *tail) -> None:
        """``name`` over the arrays, up to ``grids.UPDATE_SLOTS`` a launch."""
        sizes = [int(a.size) for a in arrays]
        arg_types = "P" * G.UPDATE_SLOTS + "q" * (2 * G.UPDATE_SLOTS) + tail_types
        for first, last, grid in G.update_launches(sizes, self.sm_count):
            args = G.fused_args(arrays, sizes, first, last)
            self._launch(_FILE, name, arg_types, str(arrays[0].dtype), grid, (G.THREADS, 1, 1),
                         *[self._ptr(a) for a in args[:G.UPDATE_SLOTS]],
                         *args[G.UPDATE_SLOTS:], *tail)
