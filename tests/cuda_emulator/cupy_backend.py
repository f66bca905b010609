"""The CuPy backend with its kernels run by the emulator: every op's own Python code (the
``cupy_backend`` modules' launchers, their NumPy scalar arguments, grids and buffers, the
shared tf32/bf16 plans) runs unchanged on host memory.

While an op of :class:`EmulatedCupyBackend` runs, and only then, the backend's modules
see the emulation (:func:`_emulating`): ``cp`` is :mod:`.cupy_standin`, ``kernels.kernel``
hands out the emulator's kernels (``kernels.launch`` and its helpers run as they are),
``kernels.current_sm_count`` is the backend's ``sm_count`` and ``blas.matmul`` is NumPy's
product under cuBLAS's contract. A launch's arguments travel as CuPy sends them: a device
array as its pointer, a NumPy scalar by its own type, so a scalar whose C type differs
from the kernel's parameter is refused, as CuPy would pass it wrongly.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
import threading
from contextlib import contextmanager

import numpy as np

from genrecnn.backends import cupy_backend as package
from genrecnn.backends.cupy_backend import blas, kernels
from genrecnn.backends.cupy_backend.backend import CupyBackend
from genrecnn.engine.ops import GROUP_OF_METHOD

from . import cupy_standin
from .build import EmulatorError
from .device import H100_CC, H100_SMS, EmulatedDevice, address

# The backend's modules, and the functions of theirs that the emulation stands in for.
MODULES = [importlib.import_module(f"{package.__name__}.{m.name}")
           for m in pkgutil.iter_modules(package.__path__)]
REAL_KERNEL, REAL_SM_COUNT, REAL_MATMUL = kernels.kernel, kernels.current_sm_count, blas.matmul
REAL_CC = kernels.compute_capability
# CuPy sends a NumPy scalar by its own type, a Python int as int64 and a float as double
# (build.Module's letters; Q: uint64, which no kernel takes but as a pointer)
SCALAR_LETTERS = {np.int32: "i", np.int64: "q", np.uint32: "I", np.uint64: "Q",
                  np.float32: "f", np.float64: "d", int: "q", float: "d"}
# The methods a caller runs: the contract's ops and the class's transfers.
ENTRY_POINTS = (*GROUP_OF_METHOD, "adopt", "reshape", "synchronize")

_ONE_AT_A_TIME = threading.RLock()     # the patched modules are shared by every thread


def launch_arguments(args: tuple, want: str) -> tuple[list, str]:
    """(values, letters) of CuPy-style arguments to a kernel taking ``want`` (letters):
    device arrays as their addresses, scalars as they are. A 64-bit integer where the
    kernel takes a pointer is one (CuPy sends its 8 bytes: ``kernels.NULL`` is
    np.uint64(0)); a host array or a type CuPy does not send is refused."""
    values, letters = [], []
    for k, a in enumerate(args):
        if isinstance(a, cupy_standin.DeviceArray):
            values.append(address(a))
            letters.append("P")
        elif type(a) in SCALAR_LETTERS:
            letter = SCALAR_LETTERS[type(a)]
            pointer = letter in "qQ" and want[k:k + 1] == "P"
            values.append(int(a) if pointer else a)
            letters.append("P" if pointer else letter)
        else:
            raise EmulatorError(f"argument {k} is a {type(a).__name__}: CuPy launches take "
                                "device arrays and NumPy or Python scalars")
    return values, "".join(letters)


def _matmul(a, b, trans_a: bool = False, trans_b: bool = False, out=None):
    """:func:`blas.matmul` by NumPy: its contract (2-D C-contiguous device arrays of one
    float dtype, ``out`` of the product's shape) is checked, since cuBLAS, reading them by
    shape, would silently compute something else."""
    given = {"a": a, "b": b} if out is None else {"a": a, "b": b, "out": out}
    for what, x in given.items():
        if not (isinstance(x, cupy_standin.DeviceArray) and x.ndim == 2
                and x.flags.c_contiguous and x.dtype == a.dtype):
            raise EmulatorError(f"blas.matmul: {what} must be a 2-D C-contiguous device array "
                                f"of {a.dtype} (got {type(x).__name__} {x.dtype} "
                                f"{x.shape}, strides {x.strides})")
    if a.dtype not in (np.float32, np.float64):
        raise EmulatorError(f"blas.matmul multiplies float32 or float64, not {a.dtype}")
    _, _, n, m, *_ = blas.gemm_args(a.shape, b.shape, trans_a, trans_b)
    if out is None:
        out = cupy_standin.empty((m, n), a.dtype)
    elif out.shape != (m, n):
        raise EmulatorError(f"blas.matmul: out is {out.shape}, the product {(m, n)}")
    np.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)
    return out


@contextmanager
def _emulating(backend: EmulatedCupyBackend):
    """The backend's modules running on the emulation (see the module docstring); what
    was there before is put back (so calls nest), whatever happens."""
    def kernel(file, name, dtype, consts=()):
        return functools.partial(backend._launch, file, name, dtype, dict(consts))

    swap = {REAL_KERNEL: kernel, REAL_SM_COUNT: lambda: backend.sm_count,
            REAL_MATMUL: _matmul, REAL_CC: lambda: backend.compute_capability}
    with _ONE_AT_A_TIME:
        saved = []
        for module in MODULES:
            for attr, value in vars(module).items():
                if attr == "cp" or any(value is real for real in swap):
                    saved.append((module, attr, value))
        try:
            for module, attr, value in saved:
                setattr(module, attr, cupy_standin if attr == "cp" else swap[value])
            yield
        finally:
            for module, attr, value in saved:
                setattr(module, attr, value)


class EmulatedCupyBackend(EmulatedDevice, CupyBackend):
    """CupyBackend on the CPU: its kernels compiled by g++ and run as fibers, cuBLAS's
    products by NumPy. A subclass that overrides an op runs it under the emulation only
    through ``super()``."""

    name = "cupy-emulated"

    def __init__(self, sm_count: int = H100_SMS, compute_capability=H100_CC):
        super().__init__()
        self.sm_count = sm_count
        self.compute_capability = tuple(compute_capability)

    def _launch(self, file: str, name: str, dtype: str, consts: dict, grid, block,
                args: tuple) -> None:
        """A CuPy ``RawKernel`` call ``kernel(grid, block, args)`` of kernel ``name`` (a
        test plants a launcher bug by overriding it)."""
        module = self._launching(file, dtype, consts)
        if module is not None:
            values, letters = launch_arguments(args, module.letters.get(name, ""))
            module.launch(name, grid, block, values, letters)


def _under_emulation(method):
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with _emulating(self):
            return method(self, *args, **kwargs)
    return run


for _name in ENTRY_POINTS:
    setattr(EmulatedCupyBackend, _name, _under_emulation(getattr(CupyBackend, _name)))
