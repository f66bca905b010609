"""NumPy: the staging ops (:mod:`genrecnn.engine.ops.staging`) on the CPU, where there is
nothing to overlap: host memory is the backend's memory, an upload is a copy done
before it returns, and the tokens are None."""
from __future__ import annotations

import numpy as np


class NumpyStaging:
    """pinned_empty, upload_async, await_upload, upload_finished for :class:`.NumpyBackend`."""

    def pinned_empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def upload_async(self, host, dst):
        np.copyto(dst, host)

    def await_upload(self, token):
        pass

    def upload_finished(self, token):
        pass
