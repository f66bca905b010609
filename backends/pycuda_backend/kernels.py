"""Compiling and launching the hand-written CUDA kernels (the ``.cu`` files here).

A kernel file is compiled once per (file, dtype, compile-time constants) with
PyCUDA's SourceModule and each function is prepared once, so a training step
costs launches only: a cold nvcc build takes about a second, which must never
happen inside a loop. This module imports PyCUDA lazily (only when a cache is
made) so that the plugin loads on machines without it.
"""
from __future__ import annotations

from importlib import resources
_SCALAR = {"float32": "f", "float64": "d"}
_CTYPE = {"float32": "float", "float64": "double"}


def kernel_source(file: str, dtype: str, consts: dict[str, int]) -> str:
    """The full CUDA source of ``file`` for ``dtype`` with ``consts`` as #defines."""
    pkg = resources.files(__package__)
    lines = [f"#define T {_CTYPE[dtype]}"]
    lines += [f"#define {k} {int(v)}" for k, v in sorted(consts.items())]
    return "\n".join(lines) + "\n" + (pkg / "common.cu").read_text() + "\n" + (pkg / file).read_text()


class KernelCache:
    """Compiled modules and prepared functions, keyed by (file, dtype, constants).

    ``compiles`` counts SourceModule builds in this process (tests check that a
    second call of an op builds nothing).
    """

    def __init__(self):
        self._modules: dict[tuple, object] = {}
        self._funcs: dict[tuple, object] = {}
        self.compiles = 0

    def get(self, file: str, name: str, arg_types: str, dtype: str, **consts):
        """The prepared function ``name`` from ``file``; ``T`` in ``arg_types`` is the
        dtype's scalar (``f`` or ``d``); other letters are PyCUDA's (P pointer, i int,
        q long long)."""
        ckey = tuple(sorted(consts.items()))
        key = (file, name, dtype, ckey)
        func = self._funcs.get(key)
        if func is None:
            mkey = (file, dtype, ckey)
            module = self._modules.get(mkey)
            if module is None:
                from pycuda.compiler import SourceModule
                module = SourceModule(kernel_source(file, dtype, consts), no_extern_c=True)
                self._modules[mkey] = module
                self.compiles += 1
            func = module.get_function(name)
            func.prepare(arg_types.replace("T", _SCALAR[dtype]))
            self._funcs[key] = func
        return func
