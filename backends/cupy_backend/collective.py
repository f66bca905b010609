"""CuPy: the collective op (:mod:`genrecnn.engine.ops.collective`): the gradients scaled
into one fused buffer, one NCCL all-reduce, and back (``collective.cu``, up to 32
gradients a launch); all on CuPy's current stream, so a captured step holds it."""
from __future__ import annotations

import numpy as np

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.nccl import nccl_sum_in_place

from . import kernels as K
from .host import HostBase

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
        if world.comm is None:
            for a in arrays:
                K.launch_flat(_FILE, "scale_into", dt, a.size,
                            (a, a, dt.type(weight), np.int64(a.size)))
            return None
        total = sum(int(a.size) for a in arrays)
        if self._fused is None or self._fused.size != total or self._fused.dtype != dt:
            self._fused = cp.empty(total, dtype=dt)
        _copy_many(arrays, self._fused, dt.type(weight), 1)
        nccl_sum_in_place(world, self._fused.data.ptr, total, str(dt),
                          cp.cuda.get_current_stream().ptr)
        _copy_many(arrays, self._fused, dt.type(1), 0)
        return None


def _copy_many(arrays, fused, weight, into_fused: int) -> None:
    """Every array to (``into_fused``: scaled by ``weight``) or from its place in ``fused``."""
    sizes = [int(a.size) for a in arrays]
    start = 0
    for first, last, grid in G.update_launches(sizes, K.current_sm_count()):
        args = G.update_args([arrays], sizes, first, last)
        K.launch(_FILE, "fused_copy_many", fused.dtype, grid, (G.THREADS, 1, 1),
                 (*args[:G.UPDATE_SLOTS], *(np.int64(n) for n in args[G.UPDATE_SLOTS:]),
                  fused[start:], weight, np.int32(into_fused)))
        start += sum(sizes[first:last])
