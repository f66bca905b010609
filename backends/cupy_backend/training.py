"""CuPy's own part of the training ops (:mod:`genrecnn.engine.ops.training`); the rest are
planned for both CUDA backends in :mod:`genrecnn.backends.cuda_kernels.training`."""
from __future__ import annotations

import numpy as np

from .host import HostBase


class CupyTrainingOps(HostBase):
    """``write`` for :class:`.CupyBackend` (listed before ``Backend`` among its bases)."""

    def write(self, dst, a):
        # an asynchronous copy on the current stream, so a captured step reads the
        # per-step values from buffers that never move
        dst.set(np.ascontiguousarray(a, dtype=dst.dtype))
