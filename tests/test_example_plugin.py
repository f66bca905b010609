"""The example third-party backend: found through its entry point and interchangeable
with NumPy layer by layer. (Its conformance is its own tests' job:
examples/genrecnn-example-backend/tests, run by the same pytest command.)"""
import importlib.metadata

import numpy as np
import pytest
from click.testing import CliRunner

from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.optim import Adam, SGD
from genrecnn.engine.registry import registry

EP = [ep for ep in importlib.metadata.entry_points(group="genrecnn") if ep.name == "example"]


def test_registered_only_through_its_entry_point():
    assert EP, ("genrecnn-example-backend is not installed: "
                "pip install -e examples/genrecnn-example-backend")
    (ep,) = EP
    assert ep.value == "genrecnn_example_backend.plugin"
    assert ep.dist.name == "genrecnn-example-backend"          # its own distribution
    info = registry().infos["example"]
    assert info.available and info.device == "cpu"
    assert "genrecnn_example_backend.plugin" in info.plugin
    from genrecnn.backends.numpy_backend.backend import NumpyBackend
    assert not issubclass(info.cls, NumpyBackend)
    result = CliRunner().invoke(__import__("genrecnn.cli.main", fromlist=["cli"]).cli, ["backends"])
    assert result.exit_code == 0 and "example" in result.output


def _train(spec, optimizer, steps=4):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 8, 40))
    y = rng.integers(0, 3, size=6)
    net = build_network(load_architecture("small"), (8, 40), n_classes=3, dtype="float64", seed=3)
    net.place(spec)
    opt = optimizer()
    losses = []
    for _ in range(steps):
        loss, _ = net.loss_and_grads(x, y)
        opt.step(net)
        losses.append(loss)
    return np.array(losses), net


@pytest.mark.parametrize("spec", ["conv=example,default=numpy", "fc=example,default=numpy",
                                  "pool=example,gpool=example,act=example,softmax=example,"
                                  "default=numpy", "example"])
@pytest.mark.parametrize("optimizer", [lambda: SGD(lr=0.05, momentum=0.9), lambda: Adam(lr=1e-3)],
                         ids=["sgd", "adam"])
def test_mixed_placement_trains_like_numpy(spec, optimizer):
    want, ref_net = _train("numpy", optimizer)
    got, net = _train(spec, optimizer)
    assert "example" in net.backend_names
    # activations really crossed backends, and only where the placement mixes them
    assert (sum(net.transfers.values()) > 0) == (spec != "example"), net.transfers
    assert np.all(np.diff(want) != 0)                   # the parameters really moved
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    for key, value in ref_net.host_params().items():
        np.testing.assert_allclose(net.host_params()[key], value, rtol=1e-7, atol=1e-10)
