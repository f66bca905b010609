"""The collective op (:mod:`genrecnn.engine.ops.collective`) for both CUDA backends,
planned once through the primitives of :mod:`.device`: every gradient scaled into one
fused buffer and the sums copied back (``collective.cu``, 32 gradients a launch) around
one NCCL all-reduce, all on the backend's stream, so a captured step holds it. Pure
Python: importing it needs no CUDA.
"""
from __future__ import annotations

import numpy as np

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.device import Launches
from genrecnn.backends.cuda_kernels.nccl import nccl_sum_in_place

_FILE = "collective.cu"
_SLOTS = "P" * G.UPDATE_SLOTS + "q" * (2 * G.UPDATE_SLOTS)    # fused_args' arrays, sizes, offsets


class CollectiveOps(Launches):
    """sum_across for a CUDA backend (listed before ``Backend``)."""

    _fused = None            # the fused buffer, kept for the next step (and its graph)

    def sum_across(self, arrays, weight, world):
        if not arrays:
            return None
        dt = np.dtype(arrays[0].dtype)
        if world.comm is None:
            for a in arrays:
                self._flat_launch(_FILE, "scale_into", "PPTq", dt, int(a.size),
                                  (a, a, weight, int(a.size)))
            return None
        sizes = [int(a.size) for a in arrays]
        total = sum(sizes)
        fused = self._fused
        if fused is None or int(fused.size) != total or np.dtype(fused.dtype) != dt:
            fused = self._fused = self._dev_empty((total,), dt)
        self._slot_launches(_FILE, "scale_many_into", _SLOTS + "PT", dt, sizes,
                            lambda first, last: G.fused_args(arrays, sizes, first, last),
                            (fused, weight))
        nccl_sum_in_place(world, self._dev_ptr(fused), total, str(dt), self._dev_stream())
        self._slot_launches(_FILE, "copy_many_from", _SLOTS + "P", dt, sizes,
                            lambda first, last: G.fused_args(arrays, sizes, first, last),
                            (fused,))
        return None
