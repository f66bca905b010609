"""The collective op on the CPU: one fused buffer, one MPI Allreduce (contract in
:mod:`genrecnn.engine.ops.collective`)."""
from __future__ import annotations

import numpy as np


class NumpyCollectiveOps:
    def sum_across(self, arrays, weight, world):
        if not arrays:
            return None
        fused = np.concatenate([a.reshape(-1) for a in arrays])
        fused *= weight
        world.sum_in_place(fused)
        start = 0
        for a in arrays:
            a.reshape(-1)[...] = fused[start:start + a.size]
            start += a.size
        return None
