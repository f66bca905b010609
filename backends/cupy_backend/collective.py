"""CuPy: the collective op (:mod:`genrecnn.engine.ops.collective`): every gradient scaled
into one fused buffer (``collective.cu``), one NCCL all-reduce, device copies back; all on
CuPy's current stream, so a captured step holds it."""
from __future__ import annotations

import numpy as np

from genrecnn.backends.cuda_kernels.nccl import nccl_sum_in_place

from .host import HostBase
from .kernels import launch_flat

try:  # CuPy stays optional: the backend must import (and be listed) without it
    import cupy as cp
except Exception:  # ImportError, or a broken CUDA install raising at import
    cp = None

_FILE = "collective.cu"


class CupyCollectiveOps(HostBase):
    """sum_across for :class:`.CupyBackend` (listed before ``Backend``)."""

    _fused = None            # the fused buffer, kept for the next step (and its graph)

    def sum_across(self, arrays, weight, world):
        if not arrays:
            return None
        dt = arrays[0].dtype
        w = dt.type(weight)
        if world.comm is None:
            for a in arrays:
                launch_flat(_FILE, "scale_into", dt, a.size, (a, a, w, np.int64(a.size)))
            return None
        total = sum(int(a.size) for a in arrays)
        if self._fused is None or self._fused.size != total or self._fused.dtype != dt:
            self._fused = cp.empty(total, dtype=dt)
        fused, start = self._fused, 0
        for a in arrays:
            launch_flat(_FILE, "scale_into", dt, a.size,
                        (a, fused[start:], w, np.int64(a.size)))
            start += a.size
        stream = cp.cuda.get_current_stream().ptr
        nccl_sum_in_place(world, fused.data.ptr, total, str(dt), stream)
        start = 0
        for a in arrays:
            cp.cuda.runtime.memcpyAsync(a.data.ptr, fused.data.ptr + start * dt.itemsize,
                                        a.nbytes, cp.cuda.runtime.memcpyDeviceToDevice, stream)
            start += a.size
        return None
