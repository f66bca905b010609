"""The PyCUDA backend with its kernels run by the emulator: every op's own Python code (grids,
tilings, split-K plans, argument letters) runs unchanged; underneath, device arrays are
NumPy arrays (device pointers are their data addresses), the driver's copies and memsets
work on those addresses, and ``_launch`` runs the kernel file's exact source on the CPU.
What it shares with the emulated CuPy backend (memory, modules, the op groups left out)
is :class:`.device.EmulatedDevice`.
"""
from __future__ import annotations

import ctypes

import numpy as np

from genrecnn.backends.pycuda_backend.backend import PycudaBackend

from .device import H100_CC, H100_SMS, EmulatedDevice, address, device_empty


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
            "data": (address(a), False)}


class EmulatedPycudaBackend(EmulatedDevice, PycudaBackend):
    """PycudaBackend on the CPU: its kernels compiled by g++ and run as fibers."""

    name = "pycuda-emulated"

    def __init__(self, sm_count: int = H100_SMS, compute_capability=H100_CC):
        self._drv = _HostDriver()
        self._GPUArray = np.ndarray
        self.sm_count = sm_count
        self.compute_capability = tuple(compute_capability)

    def _dev_compute_capability(self):
        return self.compute_capability

    def _empty(self, shape, dtype):
        return device_empty(shape, dtype)

    @staticmethod
    def _ptr(a) -> int:
        return address(a)

    def _launch(self, file, name, arg_types, dtype, grid, block, *args, **consts):
        scalar = {"float32": "f", "float64": "d"}[str(dtype)]
        module = self._launching(file, str(dtype), consts)
        if module is not None:
            module.launch(name, grid, block, args, arg_types.replace("T", scalar))

    def adopt(self, x, source):
        if isinstance(x, np.ndarray) and not x.flags.c_contiguous:
            x = _DeviceView(x)
        return super().adopt(x, source)
