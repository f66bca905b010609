"""The CuPy backend: on a machine without CuPy or a GPU, that it is listed as
unavailable with a reason and that choosing it is one clear error; on the GPU,
its column-matrix cache and zero-copy adopt. The ops themselves are checked by
the conformance suite (tests/test_conformance.py)."""
import sys
import types

import numpy as np
import pytest

from genrecnn.engine.architectures import build_network
from genrecnn.backends.cupy_backend import CupyBackend
from genrecnn.backends.numpy_backend import NumpyBackend
from genrecnn.cli.main import main
from genrecnn.errors import BackendError
from genrecnn.engine.registry import build_registry

AVAILABLE, REASON = CupyBackend.availability()
gpu = pytest.mark.skipif(not AVAILABLE, reason=f"cupy backend unavailable: {REASON}")
cpu_only = pytest.mark.skipif(AVAILABLE, reason="cupy is available here: its unavailable "
                                                "path is tested on machines without it")

SMALL = [{"type": "conv", "filters": 6, "width": 3}, {"type": "act", "fn": "relu"},
         {"type": "pool", "size": 2}, {"type": "gpool"}, {"type": "fc", "units": "classes"},
         {"type": "softmax"}]


# -- without CuPy / GPU ----------------------------------------------------------------------

@cpu_only
def test_listed_unavailable_with_reason(capsys):
    info = build_registry().infos["cupy"]
    assert info.device == "cuda" and info.dtypes == ("float32", "float64")
    assert not info.available
    assert info.reason.startswith(("cupy not installed", "no CUDA driver", "no CUDA GPU found",
                                   "cupy failed to import"))
    assert main(["backends"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("cupy"))
    assert f"unavailable: {info.reason}" in line


@cpu_only
def test_choosing_it_is_one_clear_error(capsys):
    net = build_network(SMALL, (4, 16), 3)
    with pytest.raises(BackendError, match=r"backend 'cupy' is not available here: .*choose "
                                           r"another with --backend"):
        net.place("conv=cupy,default=numpy")


def _fake_cupy(monkeypatch, count=None, status=None):
    """Put a stand-in ``cupy`` whose device count is ``count`` or raises with ``status``."""
    class CUDARuntimeError(RuntimeError):
        def __init__(self, st):
            super().__init__(f"cudaError {st}")
            self.status = st

    def get_count():
        if status is not None:
            raise CUDARuntimeError(status)
        return count

    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=get_count)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr("genrecnn.backends.cupy_backend.backend.cp", fake)


@pytest.mark.parametrize("count, status, reason", [
    (0, None, "no CUDA GPU found"), (None, 100, "no CUDA GPU found"),
    (None, 35, "no CUDA driver"), (1, None, "")])
def test_availability_reasons_never_raise(monkeypatch, count, status, reason):
    _fake_cupy(monkeypatch, count, status)
    ok, why = CupyBackend.availability()
    assert ok == (reason == "") and why.startswith(reason)


def test_availability_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)          # import cupy -> ImportError
    monkeypatch.setattr("genrecnn.backends.cupy_backend.backend.cp", None)
    assert CupyBackend.availability() == (False, "cupy not installed")


# -- on the GPU (the ops themselves: the conformance suite, in tests/test_conformance.py) --

@gpu
def test_column_matrix_is_kept_only_while_its_input_lives():
    """(The GEMM path's cache: 4 filters would otherwise run the direct kernels, which
    build no column matrix.)"""
    import gc
    cu = CupyBackend()
    cu.direct_conv1d_max_filters = 0
    x = cu.from_host(np.ones((2, 3, 9)))
    w, b = cu.from_host(np.ones((4, 3, 2))), cu.from_host(np.zeros(4))
    cu.conv1d(x, w, b)
    assert len(cu._cols) == 1                 # training: waits for the backward
    cu.conv1d_backward(x, w, cu.from_host(np.ones((2, 4, 8))))
    assert len(cu._cols) == 0                 # used once, then dropped
    cu.conv1d(x, w, b)
    del x
    gc.collect()
    assert len(cu._cols) == 0                 # inference: dies with its input


@gpu
def test_adopt_is_zero_copy_and_keeps_the_source_alive():
    import cupy as cp
    cu = CupyBackend()

    class Foreign:                       # any producer exposing __cuda_array_interface__
        def __init__(self, a):
            self._a = a
            self.__cuda_array_interface__ = a.__cuda_array_interface__

    src = cp.arange(12, dtype=cp.float32).reshape(3, 4)
    ptr = src.data.ptr
    wrapped = cu.adopt(Foreign(src), NumpyBackend())
    del src
    assert wrapped.data.ptr == ptr and isinstance(wrapped, cp.ndarray)
    np.testing.assert_array_equal(cu.to_host(wrapped), np.arange(12).reshape(3, 4))
    assert cu.adopt(wrapped, cu) is wrapped
