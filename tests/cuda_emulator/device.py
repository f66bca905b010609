"""What the emulated CUDA backends share: device memory as NumPy arrays in host memory,
the kernel modules they launch from, the SM count their grids are planned for, and a
recording mode that finds which modules a run needs without running a kernel.

Op groups that need a real device are not claimed: graph (CUDA graphs) and staging
(streams and page-locked memory). collective is: its conformance cases sum in a world of
one, which scales in place with collective.cu and needs no NCCL.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from genrecnn.engine.ops import OP_GROUPS

from . import build

NOT_EMULATED = frozenset({"graph", "staging"})
H100_SMS = 132          # the grids and split-K plans of the GPU the lead tests on
H100_CC = (9, 0)        # its compute capability (tensor cores for tf32 and bf16)
ALIGNMENT = 256         # cudaMalloc's, and what both backends' memory pools hand out


def device_empty(shape, dtype) -> np.ndarray:
    """An array as device memory comes: aligned as cudaMalloc aligns, and uninitialised,
    every byte 0xFF (NaN, or -1 for int32), so a kernel that reads what nobody wrote
    shows it."""
    shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    memory = raw[start:start + nbytes]
    memory.fill(0xFF)
    return memory.view(dtype).reshape(shape)


def address(a: np.ndarray) -> int:
    """The address of an array's first element (a device pointer, under emulation)."""
    return int(a.__array_interface__["data"][0])


class EmulatedDevice:
    """A mixin for a CUDA backend class (listed first among its bases): kernels run by
    the emulator, arrays in host memory; a launch runs on the module ``_launching`` gives."""

    device = "cpu"           # its arrays live in host memory
    ops = frozenset(g.name for g in OP_GROUPS) - NOT_EMULATED
    # module keys (build.module_key) the launches would run from, while recording
    recording: set[tuple] | None = None

    @classmethod
    def availability(cls):
        if build.compiler() is None:
            return False, "no C++ compiler (g++) for the CUDA emulator"
        return True, ""

    def _module(self, file: str, dtype: str, consts: dict) -> build.Module:
        """The module a launch from ``file`` runs (a test plants a bug by overriding it)."""
        return build.module(file, dtype, consts)

    def _launching(self, file: str, dtype: str, consts: dict) -> build.Module | None:
        """The module a launch from ``file`` runs; None while recording (its key noted)."""
        if self.recording is not None:
            self.recording.add(build.module_key(file, dtype, consts))
            return None
        return self._module(file, dtype, consts)


def modules_needed(run: Callable[[EmulatedDevice], object], backend_class: type,
                   sm_count: int = H100_SMS) -> set[tuple]:
    """The module keys (:func:`build.module_key`) that ``run(backend)`` launches from, for
    a backend of ``backend_class``, found without running kernels (outputs stay
    uninitialised): :func:`build.prebuild` can then compile them in parallel."""
    recorder = backend_class(sm_count)
    recorder.recording = set()
    run(recorder)
    return recorder.recording
