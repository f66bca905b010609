"""A CPU emulator of this project's CUDA kernels, for tests (no GPU needed).

``cuda_emu.h`` makes CUDA C compile with g++ (threads are fibers: ``emu_fibers.h``,
``emu_context.h``); :mod:`.build` compiles a kernel file's exact source into a shared
library and launches its kernels; :mod:`.backend` runs the PyCUDA backend on it and
:mod:`.cupy_backend` the CuPy backend (on :mod:`.cupy_standin`), sharing :mod:`.device`;
:mod:`.conformance_subset` is what their tests run; :mod:`.signatures` reads the
kernels' parameter lists.
"""
from .build import EmulatorError, Module, compiler, loaded_modules, module, prebuild
from .signatures import KERNELS, kernel_params, package_params

__all__ = ["EmulatorError", "KERNELS", "Module", "compiler", "kernel_params",
           "loaded_modules", "module", "package_params", "prebuild"]
