"""PyCUDA's side of the shared kernels (:mod:`genrecnn.backends.cuda_kernels`): each
function prepared once, so a training step costs launches only. PyCUDA is imported only
when a module is first built, so the plugin loads on machines without it.
"""
from __future__ import annotations

from genrecnn.backends.cuda_kernels.loader import ModuleCache, pycuda_module

_SCALAR = {"float32": "f", "float64": "d"}     # PyCUDA's argument letter for T


class KernelCache:
    """Prepared functions, keyed by (file, name, dtype, constants), from one module cache.

    ``compiles`` counts nvcc builds in this process (tests check that a second call of an
    op builds nothing).
    """

    def __init__(self):
        self._modules = ModuleCache(pycuda_module)
        self._funcs: dict[tuple, object] = {}

    @property
    def compiles(self) -> int:
        return self._modules.compiles

    def get(self, file: str, name: str, arg_types: str, dtype: str, **consts):
        """The prepared function ``name`` from ``file``; ``T`` in ``arg_types`` is the
        dtype's scalar (``f`` or ``d``); other letters are PyCUDA's (P pointer, i int,
        q long long)."""
        key = (file, name, dtype, tuple(sorted(consts.items())))
        func = self._funcs.get(key)
        if func is None:
            func = self._modules.get(file, dtype, consts).get_function(name)
            func.prepare(arg_types.replace("T", _SCALAR[dtype]))
            self._funcs[key] = func
        return func
