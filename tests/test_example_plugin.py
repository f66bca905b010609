"""The example third-party backend: found through its entry point, conformant, and
interchangeable with NumPy layer by layer."""
import importlib.metadata
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.optim import Adam, SGD
from genrecnn.engine.registry import registry

EP = [ep for ep in importlib.metadata.entry_points(group="genrecnn") if ep.name == "example"]
pytestmark = pytest.mark.skipif(
    not EP, reason="genrecnn-example-backend not installed: "
                   "pip install -e examples/genrecnn-example-backend")


def test_registered_only_through_its_entry_point():
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


def test_example_passes_conformance():
    from genrecnn.conformance import run_conformance
    report = run_conformance("example")
    assert report.ok, "\n" + report.text()
    assert {r.dtype for r in report.rows} == {"float32", "float64", "int32"}


def test_pytest_one_liner_runs_the_suite_on_it(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs",
         "genrecnn.conformance", "--genrecnn-backend", "example", "--genrecnn-op", "conv1d"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


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
    if spec != "example":
        assert sum(net.transfers.values()) > 0          # activations really crossed backends
    assert np.all(np.diff(want) != 0)                   # the parameters really moved
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    for key, value in ref_net.host_params().items():
        np.testing.assert_allclose(net.host_params()[key], value, rtol=1e-7, atol=1e-10)
