"""Mixing the two GPU backends in one network: training matches NumPy, and
arrays cross between CuPy and PyCUDA layers without any host copy (shared
device pointers, host copies forbidden except the network's own input/output)."""
import numpy as np
import pytest

from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.optim import Adam
from genrecnn.engine.registry import registry

_WHY = {n: registry().infos[n].reason for n in ("cupy", "pycuda")
        if n not in registry().infos or not registry().infos[n].available}
pytestmark = pytest.mark.skipif(
    bool(_WHY), reason="needs both GPU backends: " + "; ".join(f"{k}: {v}" for k, v in _WHY.items()))

INPUT, CLASSES, BATCH = (16, 80), 4, 6
TOL = {"float32": 2e-4, "float64": 1e-9}
# every layer on a GPU, the two GPU backends alternating: seven hand-overs a pass
ALTERNATING = "conv=cupy,act=pycuda,pool=cupy,gpool=pycuda,fc=cupy,softmax=pycuda"


def _batch():
    rng = np.random.default_rng(7)
    return rng.normal(size=(BATCH, *INPUT)), rng.integers(0, CLASSES, BATCH)


def _train(spec, dtype, steps=3, before_step=None):
    net = build_network(load_architecture("small"), INPUT, CLASSES, dtype=dtype, seed=3)
    net.place(spec)
    if before_step:
        before_step(net)
    opt = Adam(lr=1e-2)
    x, y = _batch()
    losses = []
    for _ in range(steps):
        loss, _ = net.loss_and_grads(x, y)
        opt.step(net)
        losses.append(loss)
    return losses, net


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("spec", ["conv=cupy,pool=pycuda,default=numpy", "conv=pycuda,fc=numpy",
                                  ALTERNATING])
def test_mixed_training_matches_numpy(spec, dtype):
    ref, ref_net = _train("numpy", dtype)
    got, net = _train(spec, dtype)
    np.testing.assert_allclose(got, ref, rtol=TOL[dtype])
    want = ref_net.host_params()
    for key, value in net.host_params().items():
        np.testing.assert_allclose(value, want[key], rtol=TOL[dtype] * 10,
                                   atol=TOL[dtype] * 10, err_msg=key)


def _ptr(a):
    return a.__cuda_array_interface__["data"][0]


def test_hand_over_between_gpu_backends_copies_nothing(monkeypatch):
    """Host copies raise except the batch in, labels in, the optimiser's step scalars in
    (8 for Adam, once per backend; later steps write them in place) and probabilities
    out; every CuPy <-> PyCUDA hand-over must keep the device pointer."""
    x, y = _batch()
    handovers = []

    def forbid_host_copies(net):
        first, last = net.backends[0], net.backends[-1]
        for be in {id(b): b for b in net.backends}.values():
            orig_from, orig_to, orig_adopt = be.from_host, be.to_host, be.adopt

            def from_host(a, be=be, orig=orig_from):
                a = np.asarray(a)
                if not ((be is first and a.shape == x.shape) or (be is last and a.shape == y.shape)
                        or a.shape == (8,)):
                    raise AssertionError(f"host -> {be.name} copy of shape {a.shape}")
                return orig(a)

            def to_host(a, be=be, orig=orig_to):
                # the probabilities out, and the loss scalar the contract returns as a float
                if not (be is last and (tuple(a.shape) == (BATCH, CLASSES) or a.size <= 1)):
                    raise AssertionError(f"{be.name} -> host copy of shape {tuple(a.shape)}")
                return orig(a)

            def adopt(a, source, be=be, orig=orig_adopt):
                out = orig(a, source)
                handovers.append((source.name, be.name, _ptr(a), _ptr(out)))
                return out

            monkeypatch.setattr(be, "from_host", from_host)
            monkeypatch.setattr(be, "to_host", to_host)
            monkeypatch.setattr(be, "adopt", adopt)

    losses, net = _train(ALTERNATING, "float64", steps=2, before_step=forbid_host_copies)
    monkeypatch.undo()
    names = net.backend_names
    boundaries = sum(a != b for a, b in zip(names, names[1:]))
    assert boundaries == 7 and set(names) == {"cupy", "pycuda"}
    assert set(net.transfers) == {("cupy", "pycuda"), ("pycuda", "cupy")}
    assert sum(net.transfers.values()) == 2 * 2 * boundaries      # 2 steps, forward + backward
    assert len(handovers) == 2 * 2 * boundaries
    assert {(s, d) for s, d, _, _ in handovers} == {("cupy", "pycuda"), ("pycuda", "cupy")}
    assert all(p_in == p_out for _, _, p_in, p_out in handovers), handovers
    ref, _ = _train("numpy", "float64", steps=2)
    np.testing.assert_allclose(losses, ref, rtol=TOL["float64"])


def test_writes_show_through_both_ways():
    """One buffer, two backends: an in-place update by either is seen by the other."""
    cu, pc = registry().get("cupy"), registry().get("pycuda")
    a = cu.from_host(np.arange(8, dtype=np.float32))
    b = pc.adopt(a, cu)
    assert _ptr(b) == _ptr(a)
    ones = np.ones(8, dtype=np.float32)
    cu.sgd_update(a, cu.from_host(ones), cu.zeros((8,), "float32"), 1.0, 0.0, 0.0)   # a -= 1
    pc.synchronize()
    np.testing.assert_array_equal(pc.to_host(b), np.arange(8) - 1)
    pc.sgd_update(b, pc.from_host(ones), pc.zeros((8,), "float32"), 1.0, 0.0, 0.0)   # b -= 1
    c = cu.adopt(b, pc)
    assert _ptr(c) == _ptr(a)
    np.testing.assert_array_equal(cu.to_host(a), np.arange(8) - 2)
