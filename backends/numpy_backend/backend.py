"""NumPy implementation of the op contract (see :mod:`genrecnn.engine.ops`).

Each op group is in the module of the contract's name (:mod:`.sequence`, :mod:`.maps`,
:mod:`.updates`, :mod:`.training`, :mod:`.staging`, :mod:`.fused`); this class holds the transfers.
Every op is vectorised, and the large ones run on all cores (:mod:`.parallel`); the
only Python loops run over blocks, chunks of examples, and the taps of a kernel or a
pooling window.
"""
from __future__ import annotations

import numpy as np

from genrecnn.engine.ops import PRECISIONS, Backend

from .collective import NumpyCollectiveOps
from .fused import NumpyFusedOps
from .maps import NumpyMapOps
from .parallel import copy
from .sequence import NumpySequenceOps
from .staging import NumpyStaging
from .training import NumpyTrainingOps
from .updates import NumpyUpdateOps


class NumpyBackend(NumpySequenceOps, NumpyMapOps, NumpyUpdateOps, NumpyTrainingOps, NumpyStaging,
                   NumpyCollectiveOps, NumpyFusedOps, Backend):
    name = "numpy"
    device = "cpu"
    precisions = PRECISIONS      # operands rounded on the host (:func:`.sequence.rounded`)

    def from_host(self, a):
        return copy(np.asarray(a))

    def to_host(self, x):
        return copy(x)

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def adopt(self, x, source):
        # Any CPU backend whose arrays are NumPy arrays can hand them over as they are
        # (copied only if another backend gave a view that is not C-contiguous).
        if isinstance(x, np.ndarray):
            return np.ascontiguousarray(x)
        return super().adopt(x, source)

    def reshape(self, x, shape):
        return x.reshape(shape)
