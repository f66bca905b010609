"""The PyCUDA backend: availability reasons everywhere; on a GPU, training steps that
match NumPy, kernels compiled once, arrays shared with CuPy without copies.

GPU tests skip with the backend's own availability reason (e.g. "pycuda not
installed") on machines without CUDA; the CPU tests check exactly that path:
the backend is listed as unavailable and placing a layer on it is the
registry's one-line error. The ops themselves are checked by the conformance
suite (tests/test_conformance.py).
"""
from __future__ import annotations

import importlib.machinery
import sys
import types

import numpy as np
import pytest

from genrecnn.backends.pycuda_backend import PycudaBackend
from genrecnn.backends.pycuda_backend.backend import probe
from genrecnn.cli.main import main
from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.ops import OP_NAMES
from genrecnn.engine.autoplace import place_by_option
from genrecnn.engine.optim import SGD, Adam
from genrecnn.errors import BackendError

AVAILABLE, REASON = PycudaBackend.availability()
gpu = pytest.mark.skipif(not AVAILABLE, reason=f"pycuda backend unavailable here: {REASON}")
no_gpu = pytest.mark.skipif(AVAILABLE, reason="pycuda is available here; this checks the "
                                              "unavailable path")


# -- everywhere: availability never raises, and says why ------------------------------------

def test_availability_is_a_reason_not_a_crash():
    ok, reason = PycudaBackend.availability()
    assert isinstance(ok, bool) and isinstance(reason, str)
    if ok:      # usable here: nothing to explain
        assert reason == "", reason
    else:       # one line saying what is missing
        assert reason.strip() and "\n" not in reason, repr(reason)


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
def test_backends_command_lists_pycuda_unavailable_with_reason(capsys, strict_json):
    assert main(["backends", "--json"]) == 0
    info = {b["name"]: b for b in strict_json(capsys.readouterr().out)}["pycuda"]
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


# -- GPU: a whole training step, compile caching, zero-copy hand-over ---------------------
# (every op against the reference, at shapes that cross thread blocks, tiles and split-K
# paths, is the conformance suite's job: tests/test_conformance.py runs it on this backend)

@pytest.fixture(scope="module")
def be():
    from genrecnn.engine.registry import get_backend
    return get_backend("pycuda")


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
    y = be.activation("relu", g)                       # kernels run on adopted memory
    assert np.array_equal(be.to_host(y), np.maximum(cp.asnumpy(a), 0))
    back = cp.asarray(y)                               # and CuPy reads ours in place
    assert back.data.ptr == int(y.gpudata)


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sms", [1, 10_000], ids=["narrow-and-large-tiles", "small-tiles"])
def test_conv1d_under_each_tiling(be, monkeypatch, dtype, sms):
    """The tiling follows the GPU's size; pretend it has 1 or 10000 multiprocessors so
    that the 32-row, large and small tilings each run, and compare with the reference
    (with the direct kernels of few-filter convolutions turned off)."""
    from genrecnn.backends.pycuda_backend import gemm
    from genrecnn.conformance import reference as ref
    monkeypatch.setattr(be, "sm_count", sms)
    monkeypatch.setattr(be, "direct_conv1d_max_filters", 0)   # tests/test_conv1d_direct.py
    used, launch = [], gemm.GemmOps._gemm

    def recording(self, name, dt, m, n, batches, tile, *args, **consts):
        used.append(tile)
        return launch(self, name, dt, m, n, batches, tile, *args, **consts)
    monkeypatch.setattr(gemm.GemmOps, "_gemm", recording)
    rng = np.random.default_rng(0)
    tol = {"float32": 1e-4, "float64": 1e-10}[dtype]
    for f, c in ((32, 128), (160, 130)):
        x = rng.standard_normal((3, c, 300)).astype(dtype)
        w = rng.standard_normal((f, c, 4)).astype(dtype) * 0.1
        b = rng.standard_normal(f).astype(dtype)
        dy = rng.standard_normal((3, f, 297)).astype(dtype)
        got = [be.to_host(be.conv1d(*(be.from_host(a) for a in (x, w, b))))]
        got += [be.to_host(a) for a in be.conv1d_backward(*(be.from_host(a) for a in (x, w, dy)))]
        want = [ref.conv1d(x, w, b), *ref.conv1d_backward(x, w, dy)]
        for g, r in zip(got, want):
            assert np.abs(g - r).max() <= tol * max(1.0, np.abs(r).max())
    expected = ([gemm.NARROW_TILE, gemm.LARGE_TILE] if sms == 1 else [gemm.SMALL_TILE])
    assert all(t in used for t in expected)
