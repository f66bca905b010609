"""The PyCUDA backend with its kernels run by the emulator: every op's own Python code (grids,
tilings, split-K plans, argument letters) runs unchanged; underneath, device arrays are
NumPy arrays (device pointers are their data addresses), the driver's copies and memsets
work on those addresses, and ``_launch`` runs the kernel file's exact source on the CPU.

Op groups that need a real device are not claimed: graph (CUDA graphs), staging (streams
and page-locked memory) and collective (NCCL).
"""
from __future__ import annotations

import ctypes
from typing import Callable

import numpy as np

from genrecnn.backends.pycuda_backend.backend import PycudaBackend
from genrecnn.engine.ops import OP_GROUPS

from . import build

NOT_EMULATED = frozenset({"graph", "staging", "collective"})
H100_SMS = 132          # the grids and split-K plans of the GPU the lead tests on
H100_CC = (9, 0)        # its compute capability (tensor cores for tf32 and bf16)


class _HostDriver:
    """The slice of ``pycuda.driver`` the backend calls, on host addresses."""

    class Context:
        @staticmethod
        def synchronize():
            """Launches run to completion before they return: nothing to wait for."""

    @staticmethod
    def memcpy_htod(dst: int, src: np.ndarray) -> None:
        ctypes.memmove(dst, np.ascontiguousarray(src).ctypes.data, src.nbytes)

    @staticmethod
    def memcpy_htod_async(dst: int, src: np.ndarray, stream=None) -> None:
        _HostDriver.memcpy_htod(dst, src)

    @staticmethod
    def memcpy_dtoh(dst: np.ndarray, src: int) -> None:
        ctypes.memmove(dst.ctypes.data, src, dst.nbytes)

    @staticmethod
    def memset_d8_async(dst: int, value: int, count: int, stream=None) -> None:
        ctypes.memset(dst, value, count)


class _DeviceView:
    """A strided NumPy view as a CUDA library would hand it over (its
    ``__cuda_array_interface__``), so ``adopt`` copies it with the strided_copy kernel."""

    def __init__(self, a: np.ndarray):
        self.base = a
        self.__cuda_array_interface__ = {
            "shape": a.shape, "typestr": a.dtype.str, "strides": a.strides, "version": 3,
            "data": (a.__array_interface__["data"][0], False)}


class EmulatedPycudaBackend(PycudaBackend):
    """PycudaBackend on the CPU: its kernels compiled by g++ and run as fibers."""

    name = "pycuda-emulated"
    device = "cpu"           # its arrays live in host memory
    ops = frozenset(g.name for g in OP_GROUPS) - NOT_EMULATED

    @classmethod
    def availability(cls):
        if build.compiler() is None:
            return False, "no C++ compiler (g++) for the CUDA emulator"
        return True, ""

    def __init__(self, sm_count: int = H100_SMS, compute_capability=H100_CC):
        self._drv = _HostDriver()
        self._GPUArray = np.ndarray
        self.sm_count = sm_count
        self.compute_capability = tuple(compute_capability)

    def _lp_compute_capability(self):
        return self.compute_capability

    def _empty(self, shape, dtype):
        """Uninitialised, as device memory is: every byte 0xFF (NaN, or -1 for int32), so a
        kernel that reads what nobody wrote shows it."""
        a = np.empty(tuple(int(s) for s in shape), dtype=np.dtype(dtype))
        a.view(np.uint8).fill(0xFF)
        return a

    @staticmethod
    def _ptr(a) -> int:
        return int(a.__array_interface__["data"][0])

    def _launch(self, file, name, arg_types, dtype, grid, block, *args, **consts):
        scalar = {"float32": "f", "float64": "d"}[str(dtype)]
        self._module(file, str(dtype), consts).launch(name, grid, block, args,
                                                      arg_types.replace("T", scalar))

    def _module(self, file: str, dtype: str, consts: dict) -> build.Module:
        """The module a launch from ``file`` runs (a test plants a bug by overriding it)."""
        return build.module(file, dtype, consts)

    def adopt(self, x, source):
        if isinstance(x, np.ndarray) and not x.flags.c_contiguous:
            x = _DeviceView(x)
        return super().adopt(x, source)


class _LaunchRecorder(EmulatedPycudaBackend):
    """Runs the ops' host code and records the modules their launches need, running no
    kernel (outputs stay uninitialised)."""

    def __init__(self, sm_count: int):
        super().__init__(sm_count)
        self.needed: set[tuple] = set()

    def _launch(self, file, name, arg_types, dtype, grid, block, *args, **consts):
        self.needed.add(build.module_key(file, dtype, consts))


def modules_needed(run: Callable[[EmulatedPycudaBackend], object],
                   sm_count: int = H100_SMS) -> set[tuple]:
    """The module keys (:func:`build.module_key`) that ``run(backend)`` launches from, found
    without running kernels: :func:`build.prebuild` can then compile them in parallel."""
    recorder = _LaunchRecorder(sm_count)
    run(recorder)
    return recorder.needed
