"""A stand-in for the ``cupy`` module, as the CuPy backend's modules use it (``cp``), on host
memory: device arrays are NumPy arrays of a subclass with CuPy's ``.data.ptr`` (the data
address), ``.set`` and ``__cuda_array_interface__``; NumPy does the array arithmetic the
backend asks of CuPy (``y += b``, ``.sum(axis=...)``, ``reshape``). Only what the claimed
op groups call is here; :mod:`.cupy_backend` patches this module in while they run.
"""
from __future__ import annotations

import ctypes
import types

import numpy as np

from .build import EmulatorError
from .device import address, device_empty

int32 = np.int32


class DeviceArray(np.ndarray):
    """``cupy.ndarray`` in host memory (views and NumPy results stay device arrays)."""

    @property
    def data(self):
        """CuPy's ``MemoryPointer`` of the first element: ``.ptr`` is its address."""
        return types.SimpleNamespace(ptr=address(self))

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "version": 3,
                "strides": None if self.flags.c_contiguous else self.strides,
                "data": (address(self), False)}

    def set(self, arr, stream=None):
        """Copy the host array ``arr`` in, refusing what CuPy refuses."""
        if not isinstance(arr, np.ndarray) or isinstance(arr, DeviceArray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, not {type(arr)}")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        if arr.dtype != self.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        self.view(np.ndarray)[...] = arr


ndarray = DeviceArray


def empty(shape, dtype=float) -> DeviceArray:
    return device_empty((shape,) if isinstance(shape, int) else shape, dtype).view(DeviceArray)


def zeros(shape, dtype=float) -> DeviceArray:
    out = empty(shape, dtype)
    out.fill(0)
    return out


def empty_like(a, dtype=None) -> DeviceArray:
    return empty(a.shape, a.dtype if dtype is None else dtype)


def array(obj, copy=True, order="C") -> DeviceArray:
    """A C-ordered device copy of host or device data (all the backend asks for)."""
    if not copy or order != "C":
        raise EmulatorError("the cupy stand-in's array() makes C-ordered copies only")
    source = np.asarray(obj if isinstance(obj, np.ndarray) else asarray(obj))
    out = empty(source.shape, source.dtype)
    out[...] = source
    return out


def asarray(a) -> DeviceArray:
    """``a`` itself if it is a device array, a zero-copy view of anything with
    ``__cuda_array_interface__``, else a device copy of host data."""
    if isinstance(a, DeviceArray):
        return a
    if hasattr(a, "__cuda_array_interface__"):
        return _from_interface(a)
    return array(a)


def ascontiguousarray(a) -> DeviceArray:
    a = asarray(a)
    return a if a.flags.c_contiguous else array(a)


def asnumpy(a, order="C") -> np.ndarray:
    return np.array(asarray(a), order=order, subok=False)


def _from_interface(obj) -> DeviceArray:
    """The memory ``obj.__cuda_array_interface__`` describes as a device array that keeps
    ``obj`` alive (CuPy's ``UnownedMemory``)."""
    cai = obj.__cuda_array_interface__
    dtype, shape = np.dtype(cai["typestr"]), tuple(int(s) for s in cai["shape"])
    strides = cai.get("strides")
    if strides is None:
        strides = tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) * dtype.itemsize
                        for i in range(len(shape)))
    if 0 in shape:
        return empty(shape, dtype)
    if min(strides, default=0) < 0:
        raise EmulatorError("the cupy stand-in takes no negative strides")
    span = dtype.itemsize + sum((n - 1) * s for n, s in zip(shape, strides))
    memory = (ctypes.c_char * span).from_address(cai["data"][0])
    memory.owner = obj
    return np.ndarray(shape, dtype, buffer=memory, strides=strides).view(DeviceArray)


class _Device:
    """``cupy.cuda.Device()``: every launch has finished when it returns."""

    def synchronize(self) -> None:
        """Nothing is queued: nothing to wait for."""


cuda = types.SimpleNamespace(Device=_Device)
