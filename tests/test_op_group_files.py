"""Every op group lives in a file of the same name in the contract and in every built-in
backend (the map in :mod:`genrecnn.engine.ops`'s docstring), and every kernel the CUDA
backends name exists in the one kernel package. Checked on the classes and the source,
so it runs without a GPU."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from genrecnn.backends.cuda_kernels.loader import kernel_files
from genrecnn.backends.cupy_backend import CupyBackend
from genrecnn.backends.numpy_backend import NumpyBackend
from genrecnn.backends.pycuda_backend import PycudaBackend
from genrecnn.engine.ops import GROUP_OF_METHOD, Backend

KERNELS = Path(__file__).resolve().parents[1] / "backends" / "cuda_kernels"
BACKENDS = Path(__file__).resolve().parents[1] / "backends"
KERNEL_NAME = re.compile(r'extern "C" __global__ void(?:\s+__launch_bounds__\([^)]*\))?\s+(\w+)\s*\(')


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


def _kernels() -> dict[str, set[str]]:
    return {f: set(KERNEL_NAME.findall((KERNELS / f).read_text())) for f in kernel_files()}


@pytest.mark.parametrize("backend", ["pycuda_backend", "cupy_backend"])
def test_every_launched_kernel_exists_in_its_file(backend):
    kernels = _kernels()
    named = []
    for path in sorted((BACKENDS / backend).glob("*.py")):
        text = path.read_text()
        own = re.search(r'^_FILE = "(\w+\.cu)"', text, re.M)      # a module's one kernel file
        own = own.group(1) if own else None
        named += re.findall(r'"(\w+\.cu)",\s*"(\w+)"', text)
        named += [(own, n) for n in re.findall(r'\(_FILE,\s*"(\w+)"', text)]
        named += [(own, n) for n in re.findall(r'_update_many\("(\w+)"', text)]
        for name, rest in re.findall(r'_elementwise\("(\w+)",(.*?)\)\n', text, re.S):
            given = re.search(r'file=(?:"(\w+\.cu)"|(_FILE))', rest)
            file = "elementwise.cu" if not given else given.group(1) or own   # PyCUDA's default
            named.append((file, name))
    assert len(named) > 20
    missing = [f"{f}:{n}" for f, n in named if n not in kernels.get(f, set())]
    assert not missing, f"{backend} launches kernels that do not exist: {missing}"
