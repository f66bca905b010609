"""CuPy: the collective op (:mod:`genrecnn.engine.ops.collective`): every gradient scaled
into one fused buffer and the sums copied back (``collective.cu``, 32 gradients a
launch) around one NCCL all-reduce; all on CuPy's current stream, so a captured step
holds it."""
from __future__ import annotations

import numpy as np

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.nccl import nccl_sum_in_place

from .host import HostBase
from . import kernels as K

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
                K.launch_flat(_FILE, "scale_into", dt, a.size, (a, a, w, np.int64(a.size)))
            return None
        total = sum(int(a.size) for a in arrays)
        if self._fused is None or self._fused.size != total or self._fused.dtype != dt:
            self._fused = cp.empty(total, dtype=dt)
        self._fused_launches("scale_many_into", arrays, (self._fused, w))
        stream = cp.cuda.get_current_stream().ptr
        nccl_sum_in_place(world, self._fused.data.ptr, total, str(dt), stream)
        self._fused_launches("copy_many_from", arrays, (self._fused,))
        return None

    def _fused_launches(self, name: str, arrays: list, tail: tuple) -> None:
        """``name`` over the arrays, up to ``grids.UPDATE_SLOTS`` a launch."""
        sizes = [int(a.size) for a in arrays]
        for first, last, grid in G.update_launches(sizes, K.current_sm_count()):
            args = G.fused_args(arrays, sizes, first, last)
            K.launch(_FILE, name, arrays[0].dtype, grid, (G.THREADS, 1, 1),
                   (*args[:G.UPDATE_SLOTS], *(np.int64(n) for n in args[G.UPDATE_SLOTS:]),
                    *tail))
