"""The PyCUDA backend: availability reasons everywhere, kernels against NumPy on a GPU.

GPU tests skip with the backend's own availability reason (e.g. "pycuda not
installed") on machines without CUDA; the CPU tests check exactly that path:
the backend is listed as unavailable and placing a layer on it is the
registry's one-line error.
"""
from __future__ import annotations

import importlib.machinery
import json
import sys
import types

import numpy as np
import pytest

from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.backends.numpy_backend.backend import NumpyBackend
from genrecnn.backends.pycuda_backend.backend import (LARGE_TILE, SMALL_TILE, PycudaBackend,
                                                         probe)
from genrecnn.cli.main import main
from genrecnn.errors import BackendError, ShapeError
from genrecnn.engine.ops import OP_NAMES
from genrecnn.engine.optim import SGD, Adam
from genrecnn.engine.autoplace import place_by_option

AVAILABLE, REASON = PycudaBackend.availability()
gpu = pytest.mark.skipif(not AVAILABLE, reason=f"pycuda backend unavailable here: {REASON}")
no_gpu = pytest.mark.skipif(AVAILABLE, reason="pycuda is available here; this checks the "
                                              "unavailable path")
TOL = {"float32": 2e-4, "float64": 1e-10}


# -- everywhere: availability never raises, and says why ------------------------------------

def test_availability_is_a_reason_not_a_crash():
    ok, reason = PycudaBackend.availability()
    assert isinstance(ok, bool) and isinstance(reason, str)
    assert ok or reason


def _fake_pycuda(monkeypatch, driver):
    pkg = types.ModuleType("pycuda")
    pkg.__spec__ = importlib.machinery.ModuleSpec("pycuda", None, is_package=True)
    pkg.__path__ = []
    pkg.driver = driver
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)


def test_probe_reasons_for_each_missing_piece(monkeypatch):
    import importlib.util

    with monkeypatch.context() as m:
        m.setattr(importlib.util, "find_spec", lambda name: None)
        assert probe() == (False, "pycuda not installed (pip install 'genrecnn[pycuda]')")

    def failing_init():
        raise RuntimeError("cuInit failed: no CUDA-capable device is detected")

    drv = types.SimpleNamespace(init=failing_init)
    with monkeypatch.context() as m:
        _fake_pycuda(m, drv)
        ok, reason = probe()
        assert not ok and reason.startswith("no CUDA driver: cuInit failed")

    drv = types.SimpleNamespace(init=lambda: None,
                                Device=types.SimpleNamespace(count=lambda: 0))
    with monkeypatch.context() as m:
        _fake_pycuda(m, drv)
        assert probe() == (False, "no CUDA GPU found")


@no_gpu
def test_backends_command_lists_pycuda_unavailable_with_reason(capsys):
    assert main(["backends", "--json"]) == 0
    info = {b["name"]: b for b in json.loads(capsys.readouterr().out)}["pycuda"]
    assert info["available"] is False and info["reason"] == REASON
    assert info["device"] == "cuda" and info["dtypes"] == ["float32", "float64"]
    assert sorted(info["ops"]) == sorted(OP_NAMES)          # every op group of the contract
    assert main(["backends"]) == 0
    assert f"unavailable: {REASON}" in capsys.readouterr().out


@no_gpu
def test_placing_on_pycuda_is_the_registrys_clear_error():
    net = build_network(load_architecture("small"), (8, 32), 3)
    want = f"backend 'pycuda' is not available here: {REASON}"
    with pytest.raises(BackendError, match=want.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        net.place("pycuda")
    with pytest.raises(BackendError, match="backend 'pycuda' is not available here"):
        place_by_option(net, "conv=pycuda,default=numpy", batch_size=4)


@no_gpu
def test_cli_backend_option_exits_2_with_one_line(capsys):
    assert main(["conformance", "--backend", "pycuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: backend 'pycuda' is not available here: {REASON}; choose another "
                   f"with --backend (available: {err[0].rsplit('available: ', 1)[1]}"]


# -- GPU: every op against the NumPy backend -----------------------------------------------

@pytest.fixture(scope="module")
def be():
    from genrecnn.engine.registry import get_backend
    return get_backend("pycuda")


NP = NumpyBackend()


def _close(got, want, dtype, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    err = float(np.abs(got.astype(np.float64) - want).max()) / scale if want.size else 0.0
    assert err <= TOL[dtype], f"{what}: scaled error {err:.3g} > {TOL[dtype]}"


def _run(be, method, *args, **kw):
    """Run ``method`` on both backends (device inputs for pycuda); return host outputs."""
    dev = [be.from_host(a) if isinstance(a, np.ndarray) else a for a in args]
    got = getattr(be, method)(*dev, **kw)
    want = getattr(NP, method)(*args, **kw)
    if not isinstance(want, tuple):
        got, want = (got,), (want,)
    return [be.to_host(g) if not isinstance(g, float) else g for g in got], list(want)


# (N, C, W, F, K): 1x1, W == K, odd sizes, and the split-K weight gradient split by
# example (the last two) and by time (N1 W2000)
CONV = [(1, 1, 1, 1, 1), (2, 3, 7, 5, 7), (3, 5, 40, 9, 3), (2, 17, 129, 70, 1),
        (1, 8, 2000, 40, 3), (4, 64, 300, 130, 4), (8, 128, 200, 256, 4)]
TILES = {"auto": None, "small": SMALL_TILE, "large": LARGE_TILE}


@pytest.fixture(params=list(TILES))
def tiled(request, be, monkeypatch):
    """The backend with its GEMM tiling forced (edge shapes through both tilings)."""
    if TILES[request.param] is not None:
        monkeypatch.setattr(be, "_tile", lambda *shape: TILES[request.param])
    return be


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", CONV, ids=lambda s: "N{}C{}W{}F{}K{}".format(*s))
def test_conv1d_matches_numpy(tiled, dtype, shape):
    be = tiled
    n, c, w, f, k = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((n, c, w)).astype(dtype)
    wt = (rng.standard_normal((f, c, k)) / np.sqrt(c * k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    dy = rng.standard_normal((n, f, w - k + 1)).astype(dtype)
    got, want = _run(be, "conv1d", x, wt, b)
    _close(got[0], want[0], dtype, "conv1d y")
    got, want = _run(be, "conv1d_backward", x, wt, dy)
    for g, r, name in zip(got, want, ("dx", "dw", "db")):
        _close(g, r, dtype, f"conv1d_backward {name}")


POOL = [(1, 1, 1, 1, 1), (2, 3, 13, 4, 4), (2, 3, 11, 3, 2), (1, 2, 9, 4, 1), (2, 2, 10, 2, 3),
        (4, 70, 1030, 4, 4)]


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("cfg", POOL, ids=lambda s: "N{}C{}W{}size{}stride{}".format(*s))
def test_maxpool1d_matches_numpy(be, dtype, ties, cfg):
    n, c, w, size, stride = cfg
    rng = np.random.default_rng(w + size)
    x = (rng.integers(0, 3, (n, c, w)) if ties else rng.standard_normal((n, c, w))).astype(dtype)
    got, want = _run(be, "maxpool1d", x, size, stride)
    _close(got[0], want[0], dtype, "maxpool1d y")
    assert got[1].dtype == np.int32 and np.array_equal(got[1], want[1]), "argmax"
    dy = rng.standard_normal(want[0].shape).astype(dtype)
    got, want = _run(be, "maxpool1d_backward", dy, want[1], w)
    _close(got[0], want[0], dtype, "maxpool1d_backward dx")


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 31), (2, 5, 33), (3, 70, 1100)])
def test_global_pool_matches_numpy(be, dtype, shape):
    rng = np.random.default_rng(shape[2])
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, :] = 0                                     # an all-zero row: L2 gradient is 0
    if shape[2] > 3:
        x[-1, -1, 1] = x[-1, -1, 3] = np.abs(x).max() + 1   # a tie: the first maximum wins
    got, want = _run(be, "global_pool", x)
    _close(got[0], want[0], dtype, "global_pool y")
    assert np.array_equal(got[1], want[1]), "argmax"
    dy = rng.standard_normal(want[0].shape).astype(dtype)
    got, want = _run(be, "global_pool_backward", x, want[0], want[1], dy)
    _close(got[0], want[0], dtype, "global_pool_backward dx")


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 2), (33, 70, 130), (300, 256, 200),
                                   (32, 1536, 700), (5, 3000, 7)])   # split-K: long reductions
def test_dense_matches_numpy(tiled, dtype, shape):
    be = tiled
    n, i, o = shape
    rng = np.random.default_rng(n + i + o)
    x = rng.standard_normal((n, i)).astype(dtype)
    w = (rng.standard_normal((i, o)) / np.sqrt(i)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    got, want = _run(be, "dense", x, w, b)
    _close(got[0], want[0], dtype, "dense y")
    dy = rng.standard_normal((n, o)).astype(dtype)
    got, want = _run(be, "dense_backward", x, w, dy)
    for g, r, name in zip(got, want, ("dx", "dw", "db")):
        _close(g, r, dtype, f"dense_backward {name}")


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_activations_match_numpy(be, dtype, kind):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(1000) * 3, [-1000, -50, 0, 50, 1000]]).astype(dtype)
    x = x.reshape(5, 201)
    dy = rng.standard_normal(x.shape).astype(dtype)
    got, want = _run(be, "activation", kind, x, 0.2)
    _close(got[0], want[0], dtype, f"{kind} y")
    got, want = _run(be, "activation_backward", kind, x, want[0], dy, 0.2)
    _close(got[0], want[0], dtype, f"{kind} dx")


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (4, 10), (300, 10), (5, 1100), (3, 3)])
def test_softmax_and_cross_entropy_match_numpy(be, dtype, shape):
    rng = np.random.default_rng(shape[1])
    z = (rng.standard_normal(shape) * 3).astype(dtype)
    if shape == (3, 3):
        z = np.array([[1e4, 0, -1e4], [-1e4, -1e4, -1e4], [1e4, 1e4 - 1, 0]], dtype=dtype)
    labels = rng.integers(0, shape[1], shape[0]).astype(np.int32)
    got, want = _run(be, "softmax", z)
    _close(got[0], want[0], dtype, "softmax")
    got, want = _run(be, "softmax_cross_entropy", z, labels)
    assert isinstance(got[0], float) and np.isfinite(got[0])
    _close(np.float64(got[0]), np.float64(want[0]), dtype, "loss")
    _close(got[1], want[1], dtype, "probs")
    got, want = _run(be, "softmax_cross_entropy_backward", want[1], labels)
    _close(got[0], want[0], dtype, "dlogits")


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_updates_in_place_match_numpy(be, dtype):
    rng = np.random.default_rng(3)
    p, g, s1 = (rng.standard_normal((70, 130)).astype(dtype) for _ in range(3))
    s2 = np.abs(rng.standard_normal((70, 130))).astype(dtype)
    dp, dg, d1, d2 = (be.from_host(a) for a in (p, g, s1, s2))
    assert be.sgd_update(dp, dg, d1, 0.01, 0.9, 1e-3) is None
    NP.sgd_update(p, g, s1, 0.01, 0.9, 1e-3)
    _close(be.to_host(dp), p, dtype, "sgd param")
    _close(be.to_host(d1), s1, dtype, "sgd velocity")
    assert be.adam_update(dp, dg, d1, d2, 3, 1e-2, 0.9, 0.999, 1e-8, 1e-2) is None
    NP.adam_update(p, g, s1, s2, 3, 1e-2, 0.9, 0.999, 1e-8, 1e-2)
    for d, h, name in ((dp, p, "param"), (d1, s1, "m"), (d2, s2, "v")):
        _close(be.to_host(d), h, dtype, f"adam {name}")
    assert np.array_equal(be.to_host(dg), g), "grad must not change"


@gpu
def test_mixed_dtypes_and_bad_shapes_are_clear_errors(be):
    x = be.from_host(np.zeros((2, 3, 8), np.float32))
    w = be.from_host(np.zeros((4, 3, 2), np.float64))
    with pytest.raises(ShapeError, match="mixed dtypes"):
        be.conv1d(x, w, be.from_host(np.zeros(4, np.float64)))
    with pytest.raises(ShapeError, match="conv1d needs"):
        be.conv1d(x, be.from_host(np.zeros((4, 5, 2), np.float32)),
                  be.from_host(np.zeros(4, np.float32)))


# -- GPU: the conformance suite, a whole training step, compile caching ----------------------

@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conformance_suite(dtype):
    conformance = pytest.importorskip("genrecnn.conformance",
                                      reason="the conformance suite is not installed")
    dtypes = (dtype, "int32") if dtype == "float32" else (dtype,)
    report = conformance.run_conformance("pycuda", dtypes=dtypes)
    assert report.ok, report.text()


def _train_step(placement, dtype, optimizer):
    net = build_network(load_architecture("small"), (16, 120), 4, dtype=dtype, seed=1)
    net.place(placement)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 16, 120)).astype(dtype)
    y = rng.integers(0, 4, 6)
    loss, probs = net.loss_and_grads(x, y)
    grads = {f"{layer.name}/{k}": be.to_host(v)
             for layer, be in zip(net.layers, net.backends) for k, v in layer.grads.items()}
    optimizer.step(net)
    loss2, _ = net.loss_and_grads(x, y)
    return loss, probs, grads, net.host_params(), loss2


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_training_step_matches_numpy(dtype, opt):
    make = {"sgd": lambda: SGD(lr=0.05, momentum=0.9, weight_decay=1e-4),
            "adam": lambda: Adam(lr=1e-3, weight_decay=1e-4)}[opt]
    ref = _train_step("numpy", dtype, make())
    got = _train_step("pycuda", dtype, make())
    mixed = _train_step("conv=pycuda,pool=pycuda,default=numpy", dtype, make())
    tol = {"float32": 1e-3, "float64": 1e-9}[dtype]
    for res in (got, mixed):
        assert abs(res[0] - ref[0]) <= tol * max(1.0, abs(ref[0]))
        assert abs(res[4] - ref[4]) <= tol * max(1.0, abs(ref[4]))
        assert np.allclose(res[1], ref[1], atol=tol)
        for key in ref[2]:
            scale = max(1.0, float(np.abs(ref[2][key]).max()))
            assert np.abs(res[2][key] - ref[2][key]).max() <= tol * scale, key
        for key in ref[3]:
            assert np.abs(res[3][key] - ref[3][key]).max() <= tol, key


@gpu
def test_kernels_compile_once_per_dtype_and_constants(be):
    rng = np.random.default_rng(0)

    def conv(dtype, k):
        x = be.from_host(rng.standard_normal((2, 3, 30)).astype(dtype))
        w = be.from_host(rng.standard_normal((4, 3, k)).astype(dtype))
        return be.to_host(be.conv1d(x, w, be.from_host(np.zeros(4, dtype))))

    conv("float32", 11)                                # widths no other test uses
    before = be.kernels.compiles
    for _ in range(3):
        conv("float32", 11)
    assert be.kernels.compiles == before, "a second call must not recompile"
    conv("float64", 11)
    conv("float32", 13)
    assert be.kernels.compiles == before + 2, "one build per new dtype / kernel width"


@gpu
def test_adopt_cupy_arrays_without_copy(be):
    cp = pytest.importorskip("cupy", reason="cupy not installed")
    a = cp.arange(24, dtype=cp.float32).reshape(2, 3, 4)
    g = be.adopt(a, source=None)
    assert int(g.gpudata) == a.data.ptr, "contiguous arrays must be wrapped, not copied"
    assert np.array_equal(be.to_host(g), cp.asnumpy(a))
    t = a.transpose(0, 2, 1)                           # not contiguous: copied on the device
    gt = be.adopt(t, source=None)
    assert int(gt.gpudata) != a.data.ptr
    assert np.array_equal(be.to_host(gt), cp.asnumpy(t))
    y = be.activation("relu", g)                       # kernels run on adopted memory
    assert np.array_equal(be.to_host(y), np.maximum(cp.asnumpy(a), 0))
    back = cp.asarray(y)                               # and CuPy reads ours in place
    assert back.data.ptr == int(y.gpudata)
