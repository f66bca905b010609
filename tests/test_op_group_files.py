"""Every op group lives in a file of the same name in the contract and in every built-in
backend (the map in :mod:`genrecnn.engine.ops`'s docstring). Checked on the classes, so it
runs without a GPU."""
from __future__ import annotations

import pytest

from genrecnn.backends.cupy_backend import CupyBackend
from genrecnn.backends.numpy_backend import NumpyBackend
from genrecnn.backends.pycuda_backend import PycudaBackend
from genrecnn.engine.ops import GROUP_OF_METHOD, Backend


def _file_of(function) -> str:
    """The module a function is defined in, as a group file name ("backend" for the
    contract package itself and for a backend's class module)."""
    last = function.__module__.rsplit(".", 1)[-1]
    return "backend" if last in ("ops", "backend") else last


@pytest.mark.parametrize("cls", [NumpyBackend, PycudaBackend, CupyBackend])
def test_each_op_group_is_in_the_contracts_file_name(cls):
    wrong = []
    for method, group in GROUP_OF_METHOD.items():
        if getattr(cls, method) is getattr(Backend, method):
            continue                          # not implemented (numpy has no graph ops)
        want, have = _file_of(getattr(Backend, method)), _file_of(getattr(cls, method))
        if want != have:
            wrong.append(f"{method} ({group}) in {have}.py, the contract's is {want}.py")
    assert not wrong, "; ".join(wrong)
