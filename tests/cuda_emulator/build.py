"""Kernel source -> a shared library of the emulator, loaded with ctypes.

A kernel file's source for a dtype and constants (``loader.kernel_source``, exactly what
nvcc and NVRTC build) is compiled with g++ after ``cuda_emu.h``, with one C entry point
per ``extern "C"`` kernel (``EMU_EXPORT``). Libraries are cached on disk under the temp
dir, keyed by a hash of everything that goes into them, and each is loaded once per
process.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np

from genrecnn.backends.cuda_kernels.loader import HEADER, kernel_source

from .signatures import kernel_params, letters

HERE = Path(__file__).resolve().parent
EMULATOR_HEADERS = ("cuda_emu.h", "emu_fibers.h", "emu_context.h")
CXXFLAGS = ("-std=c++17", "-O2", "-shared", "-fPIC", "-fvisibility=hidden")


class EmulatorError(RuntimeError):
    """A kernel that does not build or launch under the emulator."""


def compiler() -> str | None:
    """The C++ compiler the emulator uses (``$CXX`` or g++), None where there is none."""
    return shutil.which(os.environ.get("CXX", "g++"))


def cache_dir() -> Path:
    """Where built libraries are kept between sessions (one folder per user)."""
    return Path(tempfile.gettempdir()) / f"genrecnn-cuda-emulator-{os.getuid()}"


def translation_unit(source: str, file: str) -> str:
    """``source`` after the emulator's header, ``#line`` markers making g++'s messages
    and __syncthreads reports name ``file`` (and common.cuh, for a kernel file of the
    package), then the entry points."""
    pkg = resources.files("genrecnn.backends.cuda_kernels")
    header = (pkg / HEADER).read_text()
    body = (pkg / file).read_text() if (pkg / file).is_file() else None
    at_header = source.find(header)
    if body is not None and at_header >= 0 and source.endswith(body):
        at_body = len(source) - len(body)
        marked = (f'#line 1 "prelude of {file}"\n' + source[:at_header]
                  + f'#line 1 "{HEADER}"\n' + source[at_header:at_body]
                  + f'#line 1 "{file}"\n' + body)
    else:
        marked = f'#line 1 "{file}"\n' + source
    exports = "".join(f"EMU_EXPORT({name})\n" for name in kernel_params(source))
    return f'#include "cuda_emu.h"\n{marked}\n#line 1 "emulator entry points"\n{exports}'


def _library(tu: str, stem: str, defines: tuple[str, ...] = ()) -> Path:
    """The shared library of ``tu`` (with ``-D`` for each of ``defines``), built unless the
    disk cache has it."""
    cxx = compiler()
    if cxx is None:
        raise EmulatorError("no C++ compiler for the CUDA emulator: install g++ "
                            "(apt-get install -y g++) or set CXX")
    flags = (*CXXFLAGS, *(f"-D{d}" for d in defines))
    key = hashlib.sha256("\0".join(
        [tu, cxx, *flags, *((HERE / h).read_text() for h in EMULATOR_HEADERS)]).encode())
    out = cache_dir() / f"{stem}-{key.hexdigest()[:20]}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        src, lib = Path(tmp) / f"{stem}.cpp", Path(tmp) / f"{stem}.so"
        src.write_text(tu)
        run = subprocess.run([cxx, *flags, f"-I{HERE}", str(src), "-o", str(lib)],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise EmulatorError(f"{stem} does not build for the emulator:\n{run.stderr[-4000:]}")
        os.replace(lib, out)                     # atomic: other processes see all or nothing
    return out


def library(source: str, file: str, dtype: str, defines: tuple[str, ...] = ()) -> Path:
    """The shared library of ``source`` (named after ``file``), built if need be."""
    return _library(translation_unit(source, file), f"{Path(file).stem}-{dtype}", defines)


class Module:
    """The emulated kernels of one source (a kernel file for a dtype and constants);
    ``launch`` runs one. ``defines`` are macros for g++ (``EMU_UCONTEXT``: the portable
    fiber switch)."""

    def __init__(self, source: str, file: str, dtype: str, defines: tuple[str, ...] = ()):
        self.file = file
        self._lib = ctypes.CDLL(str(library(source, file, dtype, defines)))
        self._lib.emu_error.restype = ctypes.c_char_p
        self._lib.emu_stack_peak.restype = ctypes.c_ulonglong
        self._lib.emu_stack_bytes.restype = ctypes.c_ulonglong
        self.stack_bytes = int(self._lib.emu_stack_bytes())   # each fiber's stack
        self.letters: dict[str, str] = {}
        self._entry = {}
        for name, kinds in kernel_params(source).items():
            read = self._lib[f"emu_letters_{name}"]
            read.restype = ctypes.c_char_p
            compiled = read().decode()
            parsed = letters(kinds, dtype)
            if compiled != parsed:
                raise EmulatorError(f"{file}:{name}: the signature parser reads {parsed!r}, "
                                    f"the compiler {compiled!r}: fix signatures.py")
            entry = self._lib[f"emu_launch_{name}"]
            entry.argtypes = (ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                              ctypes.c_void_p)
            entry.restype = ctypes.c_int
            self.letters[name], self._entry[name] = compiled, entry

    def stack_peak(self) -> int:
        """Bytes of fiber stack the deepest thread of any launch of this module used."""
        return int(self._lib.emu_stack_peak())

    def launch(self, name: str, grid, block, args, arg_letters: str | None = None) -> None:
        """Run kernel ``name`` on ``grid`` x ``block`` with ``args`` (device pointers as
        ints, scalars as Python numbers). ``arg_letters`` (PyCUDA's, T resolved) are
        checked against the kernel's parameters."""
        want = self.letters.get(name)
        if want is None:
            raise EmulatorError(f"{self.file} has no kernel {name!r}")
        if arg_letters is not None and arg_letters != want:
            at = next((k for k, (a, b) in enumerate(zip(arg_letters, want)) if a != b),
                      min(len(arg_letters), len(want)))
            raise EmulatorError(f"{self.file}:{name} takes {want!r}, was launched with "
                                f"{arg_letters!r} (they differ from argument {at} on)")
        if len(args) != len(want):
            raise EmulatorError(f"{self.file}:{name} takes {len(want)} arguments, "
                                f"was given {len(args)}")
        slots = _pack(want, args)
        base = slots.ctypes.data
        argv = (ctypes.c_void_p * max(1, len(args)))(*(base + 8 * k for k in range(len(args))))
        dims = [(ctypes.c_uint * 3)(*(int(v) for v in tuple(d) + (1,) * (3 - len(d))))
                for d in (grid, block)]
        with _ONE_LAUNCH:
            failed = self._entry[name](dims[0], dims[1], argv) != 0
        if failed:
            raise EmulatorError(f"{self.file}:{name} (grid {tuple(grid)}, block {tuple(block)}):"
                                f" {self._lib.emu_error().decode()}")


def _pack(want: str, args) -> np.ndarray:
    """One 8-byte slot per argument holding its value as the kernel's parameter type
    (NumPy refuses values out of that type's range)."""
    slots = np.zeros(max(1, len(args)), dtype=np.uint64)
    views = {"P": (np.uint64, 1), "q": (np.int64, 1), "d": (np.float64, 1),
             "i": (np.int32, 2), "I": (np.uint32, 2), "f": (np.float32, 2)}
    for k, (letter, value) in enumerate(zip(want, args)):
        if letter not in views:
            raise EmulatorError(f"cannot pass a parameter of type letter {letter!r}")
        dtype, per = views[letter]
        slots.view(dtype)[per * k] = value
    return slots


_MODULES: dict[tuple, Module] = {}
_ONE_LAUNCH = threading.Lock()        # a library's scheduler runs one launch at a time


def module_key(file: str, dtype: str, consts: dict[str, int] | None = None) -> tuple:
    """(file, dtype, sorted constants): what one module is built from."""
    return file, str(dtype), tuple(sorted((consts or {}).items()))


def module(file: str, dtype: str, consts: dict[str, int] | None = None) -> Module:
    """The emulated module of ``file`` for ``dtype`` and ``consts``, built on first use."""
    key = module_key(file, dtype, consts)
    mod = _MODULES.get(key)
    if mod is None:
        mod = _MODULES[key] = Module(kernel_source(file, str(dtype), consts), file, str(dtype))
    return mod


def loaded_modules() -> list[Module]:
    """Every module this process has loaded."""
    return list(_MODULES.values())


def prebuild(keys, workers: int | None = None) -> None:
    """Build the libraries of ``keys`` (from :func:`module_key`) that the disk cache lacks,
    ``workers`` g++ processes at a time (default: one per core)."""
    def one(key):
        file, dtype, consts = key
        library(kernel_source(file, dtype, dict(consts)), file, dtype)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(one, sorted(set(keys))))
