"""The CuPy backend: the conformance suite and NumPy agreement on the GPU; on a
machine without CuPy or a GPU, that it is listed as unavailable with a reason
and that choosing it is one clear error."""
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


# -- on the GPU ------------------------------------------------------------------------------

@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conformance(dtype):
    from genrecnn.conformance import run_conformance
    report = run_conformance("cupy", dtypes=[dtype])
    assert report.ok, report.text()


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


TOL = {"float32": 2e-5, "float64": 1e-12}


def _pair():
    return CupyBackend(), NumpyBackend()


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n, c, w, f, k", [(1, 1, 4, 1, 4), (3, 5, 17, 2, 1), (2, 7, 40, 9, 4),
                                           (4, 128, 300, 32, 4)])
def test_conv_matches_numpy(dtype, n, c, w, f, k):
    cu, nu = _pair()
    rng = np.random.default_rng(n * 100 + w)
    x = rng.normal(size=(n, c, w)).astype(dtype)
    wt = rng.normal(size=(f, c, k)).astype(dtype)
    b = rng.normal(size=f).astype(dtype)
    dy = rng.normal(size=(n, f, w - k + 1)).astype(dtype)
    xd, wd = cu.from_host(x), cu.from_host(wt)
    y = cu.conv1d(xd, wd, cu.from_host(b))
    assert str(y.dtype) == dtype and _rel(cu.to_host(y), nu.conv1d(x, wt, b)) < TOL[dtype]
    want = nu.conv1d_backward(x, wt, dy)
    # the same x (forward's column matrix reused), then a fresh copy (rebuilt)
    for x_in in (xd, cu.from_host(x)):
        got = cu.conv1d_backward(x_in, wd, cu.from_host(dy))
        for g, r in zip(got, want):
            assert g.shape == r.shape and str(g.dtype) == dtype
            assert _rel(cu.to_host(g), r) < TOL[dtype]


@gpu
def test_column_matrix_is_kept_only_while_its_input_lives():
    import gc
    cu = CupyBackend()
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
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("w, size, stride", [(12, 4, 4), (13, 3, 1), (5, 5, 1), (11, 2, 3),
                                             (1289, 4, 4)])
def test_pooling_with_ties_matches_numpy(dtype, w, size, stride):
    cu, nu = _pair()
    rng = np.random.default_rng(w + size)
    x = rng.integers(-2, 3, size=(3, 4, w)).astype(dtype)         # many ties
    y, am = cu.maxpool1d(cu.from_host(x), size, stride)
    ry, ram = nu.maxpool1d(x, size, stride)
    np.testing.assert_array_equal(cu.to_host(am), ram)
    np.testing.assert_array_equal(cu.to_host(y), ry)
    dy = rng.normal(size=ry.shape).astype(dtype)
    dx = cu.maxpool1d_backward(cu.from_host(dy), am, w)
    assert _rel(cu.to_host(dx), nu.maxpool1d_backward(dy, ram, w)) < TOL[dtype]
    x[0, 0, :] = 0                                                # a zero row: L2 = 0
    gy, gam = cu.global_pool(cu.from_host(x))
    rgy, rgam = nu.global_pool(x)
    np.testing.assert_array_equal(cu.to_host(gam), rgam)
    assert _rel(cu.to_host(gy), rgy) < TOL[dtype]
    gdy = rng.normal(size=rgy.shape).astype(dtype)
    gdx = cu.global_pool_backward(cu.from_host(x), gy, gam, cu.from_host(gdy))
    assert _rel(cu.to_host(gdx), nu.global_pool_backward(x, rgy, rgam, gdy)) < TOL[dtype]


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n, k", [(1, 1), (5, 10), (33, 70)])
def test_softmax_huge_logits_match_numpy(dtype, n, k):
    cu, nu = _pair()
    rng = np.random.default_rng(k)
    z = (rng.normal(size=(n, k)) * 1e4).astype(dtype)
    labels = rng.integers(0, k, n).astype(np.int32)
    loss, p = cu.softmax_cross_entropy(cu.from_host(z), cu.from_host(labels))
    rloss, rp = nu.softmax_cross_entropy(z, labels)
    assert np.isfinite(loss) and abs(loss - rloss) <= TOL[dtype] * max(1.0, abs(rloss))
    assert _rel(cu.to_host(p), rp) < TOL[dtype]
    assert _rel(cu.to_host(cu.softmax(cu.from_host(z))), rp) < TOL[dtype]
    g = cu.softmax_cross_entropy_backward(p, cu.from_host(labels))
    assert _rel(cu.to_host(g), nu.softmax_cross_entropy_backward(rp, labels)) < TOL[dtype]


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_updates_in_place_match_numpy(dtype):
    cu, nu = _pair()
    rng = np.random.default_rng(1)
    p0, v0 = rng.normal(size=(2, 3, 5)).astype(dtype), np.zeros((2, 3, 5), dtype)
    hp, hv, hm, hv2 = p0.copy(), v0.copy(), v0.copy(), v0.copy()
    dp, dv = cu.from_host(p0), cu.from_host(v0)
    ap, am, av = cu.from_host(p0), cu.from_host(v0), cu.from_host(v0)
    hap = p0.copy()
    for step in range(1, 4):
        g = rng.normal(size=p0.shape).astype(dtype)
        nu.sgd_update(hp, g, hv, 0.1, 0.9, 0.01)
        assert cu.sgd_update(dp, cu.from_host(g), dv, 0.1, 0.9, 0.01) is None
        nu.adam_update(hap, g, hm, hv2, step, 0.01, 0.9, 0.999, 1e-8, 0.01)
        cu.adam_update(ap, cu.from_host(g), am, av, step, 0.01, 0.9, 0.999, 1e-8, 0.01)
    assert _rel(cu.to_host(dp), hp) < TOL[dtype] and _rel(cu.to_host(dv), hv) < TOL[dtype]
    assert _rel(cu.to_host(ap), hap) < 10 * TOL[dtype]


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


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(2, 8, 256), (3, 5, 7)])      # 16-byte vector path, fallback
def test_relu_paths_match_numpy(dtype, shape):
    cu, nu = _pair()
    rng = np.random.default_rng(5)
    x = rng.normal(size=shape).astype(dtype)
    x.flat[:3] = [0.0, -0.0, np.nan]
    dy = rng.normal(size=shape).astype(dtype)
    y = cu.activation("relu", cu.from_host(x))
    np.testing.assert_array_equal(cu.to_host(y), nu.activation("relu", x))
    dx = cu.activation_backward("relu", cu.from_host(x), y, cu.from_host(dy))
    np.testing.assert_array_equal(cu.to_host(dx), nu.activation_backward("relu", x, None, dy))
