"""The fused block in a network: batchnorm -> relu -> pool2d on one backend that declares
``fused`` runs as one op, and trains, predicts and keeps its running statistics as the
three layers do alone; any other arrangement runs the layers alone."""
import numpy as np
import pytest

from genrecnn.backends.numpy_backend.backend import NumpyBackend
from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.blocks import NormReluPool, units
from genrecnn.engine.optim import SGD

SHAPE = (16, 24)          # mel bands, frames: four 2x2 poolings leave 1 x 1


def cnn2d(dtype="float64"):
    return build_network(load_architecture("cnn2d"), SHAPE, 3, dtype=dtype, seed=1)


def train(net, steps=3):
    rng = np.random.default_rng(0)
    opt = SGD(lr=0.05)          # not Adam: it would blow up the noise of the conv biases'
                                # zero gradients (a bias before batch norm) into steps
    for _ in range(steps):
        x = rng.normal(size=(6, *SHAPE))
        net.loss_and_grads(x, rng.integers(0, 3, 6))
        opt.step(net)
    return net


def blocks(net):
    return [u for u, _ in net._units() if isinstance(u, NormReluPool)]


def test_cnn2d_trains_and_predicts_the_same_fused_and_unfused(monkeypatch):
    calls = []
    backward = NumpyBackend.norm_relu_maxpool2d_backward
    monkeypatch.setattr(NumpyBackend, "norm_relu_maxpool2d_backward",
                        lambda self, *args: calls.append(1) or backward(self, *args))
    fused, alone = cnn2d(), cnn2d()
    alone.fuse = False
    fused.ensure_placed()
    alone.ensure_placed()
    assert len(blocks(fused)) == 4 and not blocks(alone)
    train(fused), train(alone)
    assert len(calls) == 4 * 3                       # every block's backward ran fused
    want, got = alone.host_params(), fused.host_params()
    assert want.keys() == got.keys() and any("running_var" in k for k in got)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-9, atol=1e-12, err_msg=key)
    x = np.random.default_rng(5).normal(size=(4, *SHAPE))
    np.testing.assert_allclose(fused.predict_proba(x), alone.predict_proba(x), rtol=1e-9)


def test_float32_training_stays_close():
    fused, alone = cnn2d("float32"), cnn2d("float32")
    alone.fuse = False
    train(fused, 2), train(alone, 2)
    want, got = alone.host_params(), fused.host_params()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-3, atol=1e-5, err_msg=key)


class NoFused(NumpyBackend):
    name = "numpy-no-fused"
    ops = NumpyBackend.declared_ops() - {"fused"}


def test_only_whole_relu_blocks_on_one_fused_backend_are_fused():
    net = cnn2d()
    net.ensure_placed()
    layers, numpy = net.layers[:-1], net.backends[0]
    assert len(units(layers, [numpy] * len(layers))) == len(layers) - 8
    for other in (NumpyBackend(), NoFused()):       # the pools on a backend of their own
        split = [other if layer.type == "pool2d" else numpy for layer in layers]
        assert not any(isinstance(u, NormReluPool) for u, _ in units(layers, split))
    assert not any(isinstance(u, NormReluPool) for u, _ in units(layers, [NoFused()] * 20))
    arch = [dict(layer, fn="tanh") if layer["type"] == "act" else layer
            for layer in load_architecture("cnn2d")]
    tanh = build_network(arch, SHAPE, 3, seed=1)
    tanh.ensure_placed()
    assert not blocks(tanh)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["cupy", "pycuda"])
def test_gpu_fused_blocks_train_and_predict_as_the_layers_alone(name):
    from genrecnn.engine.registry import registry
    info = registry().infos.get(name)
    if info is None or not info.available:
        pytest.skip(f"{name} unavailable: {info.reason if info else 'not installed'}")
    fused, alone = cnn2d("float32"), cnn2d("float32")
    alone.fuse = False
    for net in (fused, alone):
        net.place(name)
    assert len(blocks(fused)) == 4 and not blocks(alone)
    train(fused, 2), train(alone, 2)
    want, got = alone.host_params(), fused.host_params()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-3, atol=1e-5, err_msg=key)
    x = np.random.default_rng(5).normal(size=(4, *SHAPE)).astype(np.float32)
    np.testing.assert_allclose(fused.predict_proba(x), alone.predict_proba(x), atol=1e-4)
