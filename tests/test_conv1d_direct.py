"""conv1d_direct.cu, the kernels both CUDA backends run for convolutions of few filters.

Everywhere: the split plan of the weight gradient covers every (example, time-slice)
unit exactly once. On a GPU: both backends, through the direct kernels and through
their GEMM path (forced by a filter limit of 0), match the reference at shapes that
cut every tile (filters, channels, positions) and at the dissertation's first layer.
"""
from __future__ import annotations

import numpy as np
import pytest

from genrecnn.backends.cupy_backend import CupyBackend
from genrecnn.backends.pycuda_backend import PycudaBackend
from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.conformance import reference as ref


@pytest.mark.parametrize("n,c,width,f,k,itemsize,sms", [
    (256, 128, 1292, 32, 4, 4, 132), (256, 32, 322, 32, 4, 4, 132), (1, 1, 1, 1, 1, 4, 132),
    (3, 130, 300, 160, 7, 8, 1), (5, 65, 64, 33, 3, 8, 10000), (0, 4, 9, 8, 2, 4, 132)])
def test_dw_plan_covers_every_unit_once(n, c, width, f, k, itemsize, sms):
    plan = G.conv1d_dw_plan(n, c, width, f, k, itemsize, sms)
    units = n * G.cdiv(width - k + 1, 64 if itemsize == 4 else 32)
    assert plan.channels == (32 if c <= 32 else 64) and plan.block == (4 * plan.channels, 1, 1)
    assert plan.grid[:2] == (G.cdiv(c, plan.channels), G.cdiv(f, 32)) and plan.size == f * c * k + f
    assert plan.per >= 1 and plan.splits <= 65535
    assert plan.splits * plan.per >= units > (plan.splits - 1) * plan.per


def _backend(cls):
    ok, reason = cls.availability()
    if not ok:
        pytest.skip(f"{cls.name} backend unavailable here: {reason}")
    from genrecnn.engine.registry import get_backend
    return get_backend(cls.name)


SHAPES = [(3, 5, 40, 7, 3), (2, 130, 300, 33, 4), (4, 64, 517, 64, 1), (1, 1, 9, 1, 9),
          (2, 3, 600, 32, 5)]     # (n, c, width, f, k)


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "gemm"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls", [CupyBackend, PycudaBackend], ids=["cupy", "pycuda"])
def test_conv1d_matches_the_reference_on_both_paths(cls, dtype, direct, monkeypatch):
    be = _backend(cls)
    monkeypatch.setattr(be, "direct_conv1d_max_filters", 64 if direct else 0)
    rng = np.random.default_rng(0)
    tol = {"float32": 1e-4, "float64": 1e-10}[dtype]
    for n, c, width, f, k in SHAPES:
        x = rng.standard_normal((n, c, width)).astype(dtype)
        w = (rng.standard_normal((f, c, k)) * 0.1).astype(dtype)
        b = rng.standard_normal(f).astype(dtype)
        dy = rng.standard_normal((n, f, width - k + 1)).astype(dtype)
        dev = [be.from_host(a) for a in (x, w, b, dy)]
        got = [be.conv1d(*dev[:3]), *be.conv1d_backward(dev[0], dev[1], dev[3]),
               *be.conv1d_backward_params(dev[0], dev[1], dev[3])]
        want = [ref.conv1d(x, w, b), *ref.conv1d_backward(x, w, dy)]
        want += want[2:]
        for name, g, r in zip(("y", "dx", "dw", "db", "dw (params)", "db (params)"), got, want):
            g = be.to_host(g)
            assert g.shape == r.shape and g.dtype == np.dtype(dtype), name
            err = np.abs(g - r).max() / max(1.0, np.abs(r).max())
            assert err <= tol, f"{name} at {(n, c, width, f, k)}: {err:.2e}"


@pytest.mark.parametrize("cls", [CupyBackend, PycudaBackend], ids=["cupy", "pycuda"])
def test_dissertation_first_layer_is_direct_and_exact(cls):
    """128 bands x 1292 frames, 32 filters of width 4, batch 64: the shape the kernels
    were written for, with the weight gradient split over many blocks."""
    be = _backend(cls)
    assert be.direct_conv1d_max_filters >= 32
    rng = np.random.default_rng(1)
    x = rng.random((64, 128, 1292), dtype=np.float32)
    w = rng.uniform(-0.044, 0.044, (32, 128, 4)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    dy = rng.standard_normal((64, 32, 1289)).astype(np.float32)
    dev = [be.from_host(a) for a in (x, w, b, dy)]
    y = be.to_host(be.conv1d(*dev[:3]))
    dw, db = (be.to_host(a) for a in be.conv1d_backward_params(dev[0], dev[1], dev[3]))
    _, rdw, rdb = ref.conv1d_backward(x, w, dy)
    for g, r in ((y, ref.conv1d(x, w, b)), (dw, rdw), (db, rdb)):
        assert np.abs(g - r).max() <= 1e-4 * max(1.0, np.abs(r).max())
