"""PyCUDA's own part of the training ops (:mod:`genrecnn.engine.ops.training`); the rest
are planned for both CUDA backends in :mod:`genrecnn.backends.cuda_kernels.training`."""
from __future__ import annotations

import numpy as np

from .host import HostBase


class PycudaTrainingOps(HostBase):
    """``write`` for :class:`.PycudaBackend` (listed before ``Backend`` among its bases)."""

    def write(self, dst, a):
        a = np.ascontiguousarray(a, dtype=dst.dtype)
        if a.nbytes:                            # asynchronous, on the backend's stream
            self._drv.memcpy_htod_async(self._ptr(dst), a, self._stream)
