"""The parameter lists of the ``extern "C"`` kernels in CUDA source, read from the text:
each parameter's kind (``ptr``, ``int``, ``long long``, ``unsigned int`` or ``T``), slot
tables ``R32(DECL_X)`` of ``common.cuh`` expanded by the kind their declaration macro
gives. The launch-argument test and the emulator's launch wrappers both use it."""
from __future__ import annotations

import re
from pathlib import Path

from genrecnn.backends.cuda_kernels.loader import HEADER, kernel_files

KERNELS = Path(__file__).resolve().parents[2] / "backends" / "cuda_kernels"
SIGNATURE = re.compile(
    r'extern "C" __global__ void(?:\s+__launch_bounds__\([^)]*\))?\s+(\w+)\s*'
    r'\(((?:[^()]|\([^()]*\))*)\)', re.S)        # parameters, slot tables R32(...) included
SLOT_DECL = re.compile(r"#define (DECL_\w+)\(i\) (.*?)##i,")   # a slot table's declaration
SLOT_TABLE = re.compile(r"R32\((\w+)\)")
SLOTS = 32                                       # arrays an R32 table declares

# a kind -> PyCUDA's argument letter (T: the dtype's, f or d)
LETTERS = {"ptr": "P", "int": "i", "long long": "q", "unsigned int": "I"}


def kind_of(declaration: str) -> str:
    """``ptr`` for any pointer, else the declaration's type without qualifiers."""
    p = " ".join(declaration.replace("__restrict__", "").replace("const", "").split())
    return "ptr" if "*" in p else " ".join(p.split()[:-1])


def slot_kinds(text: str) -> dict[str, str]:
    """Each slot-table declaration macro (``DECL_X``) defined in ``text`` and its kind."""
    return {name: kind_of(body) for name, body in SLOT_DECL.findall(text)}


def kernel_params(text: str, slots: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Each kernel of ``text`` and its parameter kinds; ``slots`` adds slot macros defined
    elsewhere (a file's own are always read)."""
    macros = {**(slots or {}), **slot_kinds(text)}
    out = {}
    for name, params in SIGNATURE.findall(text):
        tables = SLOT_TABLE.findall(params)          # they come first, as the kernels have them
        rest = SLOT_TABLE.sub("", params).split(",")
        out[name] = ([macros[t] for t in tables for _ in range(SLOTS)]
                     + [kind_of(p) for p in rest if p.strip()])
    return out


def package_params() -> dict[tuple[str, str], list[str]]:
    """(file, kernel) -> parameter kinds for every kernel file of the package."""
    texts = {f: (KERNELS / f).read_text() for f in (*kernel_files(), HEADER)}
    shared = {name: kind for text in texts.values() for name, kind in slot_kinds(text).items()}
    return {(file, name): kinds for file in kernel_files()
            for name, kinds in kernel_params(texts[file], shared).items()}


def letters(kinds: list[str], dtype: str) -> str:
    """PyCUDA's argument letters for ``kinds`` (T as ``f`` or ``d`` for ``dtype``)."""
    scalar = {"float32": "f", "float64": "d"}[str(dtype)]
    return "".join(scalar if k == "T" else LETTERS.get(k, "?") for k in kinds)
