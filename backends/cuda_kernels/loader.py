"""Assembling and compiling the kernel files of this package, for both CUDA backends.

A kernel file is compiled once per (file, dtype, compile-time constants): a prelude that
fixes ``T`` (and its 16-byte vector ``V`` of ``VN`` lanes) and defines the constants,
then ``common.cuh``, then the file. PyCUDA builds that source with nvcc
(``SourceModule``), CuPy with NVRTC (``RawModule``); a cold build takes about a second,
which must never happen inside a loop, so :class:`ModuleCache` keeps every module.
Importing this module needs neither PyCUDA nor CuPy.
"""
from __future__ import annotations

from importlib import resources
from typing import Callable

# dtype -> (C type, its 16-byte vector type, lanes of that vector)
_CTYPE = {"float32": ("float", "float4", 4), "float64": ("double", "double2", 2)}
HEADER = "common.cuh"


def ctype(dtype: str) -> str:
    """The C scalar type of a floating dtype (``float`` or ``double``)."""
    return _CTYPE[str(dtype)][0]


def kernel_files() -> tuple[str, ...]:
    """Every kernel file of the package, sorted."""
    return tuple(sorted(p.name for p in resources.files(__package__).iterdir()
                        if p.name.endswith(".cu")))


def kernel_source(file: str, dtype: str, consts: dict[str, int] | None = None) -> str:
    """The full CUDA source of ``file`` for ``dtype`` with ``consts`` as #defines."""
    scalar, vec, lanes = _CTYPE[str(dtype)]
    lines = [f"typedef {scalar} T;", f"typedef {vec} V;", f"#define VN {lanes}"]
    lines += [f"#define {k} {int(v)}" for k, v in sorted((consts or {}).items())]
    pkg = resources.files(__package__)
    return "\n".join(lines) + "\n" + (pkg / HEADER).read_text() + "\n" + (pkg / file).read_text()


def pycuda_module(source: str):
    """``source`` built by PyCUDA (nvcc); every kernel is ``extern "C"``."""
    from pycuda.compiler import SourceModule
    return SourceModule(source, no_extern_c=True)


def cupy_module(source: str):
    """``source`` built by CuPy (NVRTC)."""
    import cupy as cp
    return cp.RawModule(code=source, options=("--std=c++14",))


class ModuleCache:
    """Compiled modules keyed by (file, dtype, constants), built by ``build``.

    ``compiles`` counts builds in this process (tests check that a second call of an op
    builds nothing).
    """

    def __init__(self, build: Callable[[str], object]):
        self._build = build
        self._modules: dict[tuple, object] = {}
        self.compiles = 0

    def get(self, file: str, dtype: str, consts: dict[str, int] | None = None):
        """The module of ``file`` for ``dtype`` and ``consts``, built on first use."""
        key = (file, str(dtype), tuple(sorted((consts or {}).items())))
        module = self._modules.get(key)
        if module is None:
            module = self._build(kernel_source(file, dtype, consts))
            self._modules[key] = module
            self.compiles += 1
        return module
