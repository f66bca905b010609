"""The engine's own behaviour: shapes, placement, registry, optimisers, model files."""
import json
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from genrecnn.engine.architectures import build_network, load_architecture, named_architectures
from genrecnn.backends.numpy_backend import NumpyBackend
from genrecnn.errors import (BackendError, DataError, ModelFileError, PlacementError, ShapeError)
from genrecnn.engine.hookspecs import hookimpl
from genrecnn.engine.layers import Conv1D, Dense, GlobalPool, MaxPool1D, Softmax
from genrecnn.run.model_io import load_model, save_model
from genrecnn.engine.network import Network
from genrecnn.engine.ops import Backend
from genrecnn.engine.optim import SGD, Adam
from genrecnn.engine.placement import parse_placement, resolve_placement
from genrecnn.engine.registry import build_registry
from genrecnn.engine.schedules import learning_rate
from genrecnn.run.fit import fit
from genrecnn.run.parts import Parts
from genrecnn.run.settings import TrainSettings

TINY = [{"type": "conv", "filters": 4, "width": 3}, {"type": "act", "fn": "relu"},
        {"type": "pool", "size": 2}, {"type": "gpool"}, {"type": "fc", "units": "classes"},
        {"type": "softmax"}]


def tiny_net(dtype="float64", seed=0):
    return build_network(TINY, (5, 12), 3, dtype=dtype, seed=seed)


def batch(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5, 12)), rng.integers(0, 3, n)


# -- shapes ---------------------------------------------------------------------------------

def test_shapes_are_inferred_and_layers_named():
    net = build_network(load_architecture("wide"), (128, 1292), 10)
    assert [l.name for l in net.layers[:3]] == ["conv1", "act1", "pool1"]
    assert net.layers[0].output_shape == (256, 1289)
    assert net.layers[2].output_shape == (256, 322)
    assert net.layers[8].output_shape == (1536,)
    assert net.n_classes == 10


def test_cangea2016_is_the_dissertations_listing():
    """Listing 3.1: conv 32 x (128, 4), leaky ReLU 0.01, pool 4; conv 32 x (32, 4), leaky
    ReLU, pool 2; conv 32 x (32, 4), leaky ReLU, global mean/max/L2; fc 32, leaky ReLU,
    fc 32, leaky ReLU, fc C, softmax; weights uniform in +-0.044, 0.088, 0.088, 0.125,
    0.125, 0.17."""
    net = build_network(load_architecture("cangea2016"), (128, 1292), 6)
    kinds = [(l.kind, getattr(l, "filters", getattr(l, "units", getattr(l, "size", None))))
             for l in net.layers]
    assert kinds == [("conv", 32), ("act", None), ("pool", 4), ("conv", 32), ("act", None),
                     ("pool", 2), ("conv", 32), ("act", None), ("gpool", None), ("fc", 32),
                     ("act", None), ("fc", 32), ("act", None), ("fc", 6), ("softmax", None)]
    assert {(l.fn, l.slope) for l in net.layers if l.kind == "act"} == {("leaky_relu", 0.01)}
    assert [tuple(l.params["w"].shape) for l in net.layers if l.kind == "conv"] == [
        (32, 128, 4), (32, 32, 4), (32, 32, 4)]
    assert net.layers[8].output_shape == (96,)
    scales = [l.scale for l in net.layers if l.kind in ("conv", "fc")]
    assert scales == [0.044, 0.088, 0.088, 0.125, 0.125, 0.17]
    for layer, s in zip([l for l in net.layers if l.kind in ("conv", "fc")], scales):
        w = np.asarray(layer.params["w"])
        assert np.abs(w).max() <= s and np.abs(w).max() > 0.9 * s      # uniform in +-scale


def test_inconsistent_architecture_names_layer_and_shapes():
    with pytest.raises(ShapeError, match=r"'conv2'.*\(4, 2\).*at least 3"):
        Network([Conv1D(4, 3), MaxPool1D(4), Conv1D(4, 3), GlobalPool(), Dense(2), Softmax()],
                (2, 12))
    with pytest.raises(ShapeError, match="fc1.*flat vector.*global pooling"):
        Network([Conv1D(4, 3), Dense(2), Softmax()], (2, 12))
    with pytest.raises(ShapeError, match="end with a softmax"):
        Network([Conv1D(4, 3), GlobalPool(), Dense(2)], (2, 12))


def test_architecture_files_toml_and_json(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"layers": TINY}))
    (tmp_path / "a.toml").write_text(
        '[[layers]]\ntype = "gpool"\n[[layers]]\ntype = "fc"\nunits = "classes"\n'
        '[[layers]]\ntype = "softmax"\n')
    assert build_network(load_architecture(str(tmp_path / "a.json")), (5, 12), 3).n_classes == 3
    assert build_network(load_architecture(str(tmp_path / "a.toml")), (5, 12), 2).n_classes == 2
    (tmp_path / "bad.toml").write_text("layers = [")
    with pytest.raises(ShapeError, match="not valid TOML"):
        load_architecture(str(tmp_path / "bad.toml"))
    with pytest.raises(ShapeError, match="unknown architecture 'nope'.*cangea2016"):
        load_architecture("nope")
    with pytest.raises(ShapeError, match="unknown layer type 'lstm'"):
        build_network([{"type": "lstm"}], (5, 12), 2)
    assert {"cangea2016", "small", "wide"} <= set(named_architectures())


def test_bad_batches_are_named():
    net = tiny_net()
    x, y = batch()
    with pytest.raises(ShapeError, match=r"shape \(6, 5, 11\).*\(batch, 5, 12\)"):
        net.predict_proba(x[:, :, :11])
    with pytest.raises(DataError, match="dtype int64"):
        net.predict_proba(x.astype(np.int64))
    x[3, 1, 2] = np.nan
    with pytest.raises(DataError, match="NaN.*example 3"):
        net.loss_and_grads(x, y)
    with pytest.raises(DataError, match=r"labels must lie in \[0, 3\)"):
        net.loss_and_grads(batch()[0], np.array([0, 1, 2, 3, 0, 0]))


# -- placement ------------------------------------------------------------------------------

def test_parse_placement():
    assert parse_placement("numpy") == {"default": "numpy"}
    assert parse_placement("conv=a, fc=b") == {"conv": "a", "fc": "b"}
    assert parse_placement("conv") == {"default": "conv"}     # a backend named conv
    for bad in ("conv=", "conv=a,conv=b"):
        with pytest.raises(PlacementError):
            parse_placement(bad)


def test_resolve_placement_precedence_and_errors():
    net = tiny_net()
    plan = resolve_placement("conv=x,conv1=y,default=z", net.layers, ["x", "y", "z", "numpy"])
    assert plan == ["y", "z", "z", "z", "z", "z"]
    plan = resolve_placement("fc=x", net.layers, ["x", "numpy"])
    assert plan == ["numpy", "numpy", "numpy", "numpy", "x", "numpy"]
    with pytest.raises(PlacementError, match="'lstm'.*conv, pool.*conv1, act1"):
        resolve_placement("lstm=numpy", net.layers, ["numpy"])
    with pytest.raises(PlacementError, match="unknown backend 'tpu'.*installed backends: numpy"):
        resolve_placement("conv=tpu", net.layers, ["numpy"])


class SlowNumpy(NumpyBackend):
    """A second CPU backend whose arrays are NumPy arrays too."""
    name = "numpy2"


def _registry_with(*classes):
    plugin = types.SimpleNamespace(genrecnn_backends=hookimpl(lambda: list(classes)))
    return build_registry(extra_plugins=[plugin])


def test_mixed_placement_matches_single_backend_and_counts_moves():
    reg = _registry_with(SlowNumpy)
    x, y = batch()
    ref = tiny_net()
    ref.place("numpy", reg)
    mixed = tiny_net()
    mixed.place("conv=numpy2,fc=numpy2", reg)
    assert mixed.backend_names == ["numpy2", "numpy", "numpy", "numpy", "numpy2", "numpy"]
    opt_a, opt_b = SGD(lr=0.1), SGD(lr=0.1)
    for _ in range(3):
        la, _ = ref.loss_and_grads(x, y)
        opt_a.step(ref)
        lb, _ = mixed.loss_and_grads(x, y)
        opt_b.step(mixed)
        assert la == pytest.approx(lb, rel=1e-12)
    # Each step moves at the three placement changes, forward (conv1->act1 and fc1->softmax
    # leave numpy2, gpool1->fc1 enters it) and backward (the reverse): 3 each way, 3 steps.
    assert mixed.transfers == {("numpy2", "numpy"): 9, ("numpy", "numpy2"): 9}
    assert ref.transfers == {}


class CountingNumpy(NumpyBackend):
    """Records which conv backward op each call used."""
    name = "counting"
    calls: list = []

    def conv1d_backward(self, x, w, dy):
        self.calls.append("full")
        return super().conv1d_backward(x, w, dy)

    def conv1d_backward_params(self, x, w, dy):
        self.calls.append("params")
        return super().conv1d_backward_params(x, w, dy)


def test_first_conv_skips_its_input_gradient_without_changing_any_gradient():
    reg = _registry_with(CountingNumpy)
    arch = [{"type": "conv", "filters": 4, "width": 3}] + TINY
    x, y = batch()
    nets = []
    for first_needs_dx in (False, True):
        net = build_network(arch, (5, 12), 3, dtype="float64", seed=1)
        net.layers[0].needs_input_grad = first_needs_dx
        net.place("counting", reg)
        CountingNumpy.calls = []
        net.loss_and_grads(x, y)
        nets.append((net, CountingNumpy.calls))
    (fast, fast_calls), (full, full_calls) = nets
    assert fast_calls == ["full", "params"] and full_calls == ["full", "full"]
    for a, b in zip(fast.layers, full.layers):
        for key in a.grads:
            np.testing.assert_allclose(a.grads[key], b.grads[key], rtol=1e-12)


class DenseOnly(NumpyBackend):
    """A partial backend: it declares only what it has."""
    name = "dense-only"
    ops = frozenset({"transfer", "dense"})


def test_placing_a_layer_on_a_backend_without_its_op_is_clear():
    reg = _registry_with(DenseOnly)
    net = tiny_net()
    assert net.place("fc=dense-only", reg)[4] == "dense-only"
    with pytest.raises(PlacementError, match=r"backend 'dense-only' does not implement conv1d, "
                                             r"which layer 'conv1' needs"):
        net.place("conv=dense-only", reg)
    assert net.backend_names[4] == "dense-only"       # the failed placement changed nothing


def test_unknown_and_unavailable_backends_are_clear():
    class Gone(NumpyBackend):
        name = "gone"

        @classmethod
        def availability(cls):
            return False, "no CUDA driver"

    reg = _registry_with(Gone)
    net = tiny_net()
    with pytest.raises(PlacementError, match="unknown backend 'nope'"):
        net.place("nope", reg)
    with pytest.raises(BackendError, match="'gone' is not available here: no CUDA driver"):
        net.place("conv=gone", reg)
    assert reg.infos["gone"].reason == "no CUDA driver"


# -- registry -------------------------------------------------------------------------------

def test_builtin_backends_come_from_entry_points():
    reg = build_registry()
    assert reg.infos["numpy"].available
    assert "genrecnn.backends.numpy_backend.plugin" in reg.infos["numpy"].plugin
    assert {"conv1d", "maxpool1d", "global_pool", "dense", "softmax"} <= set(reg.infos["numpy"].ops)


def test_broken_plugins_never_stop_the_others(monkeypatch):
    import importlib.metadata as md

    good = list(md.entry_points(group="genrecnn"))
    broken = md.EntryPoint("exploding", "genrecnn_test_exploding_plugin", "genrecnn")
    monkeypatch.setitem(sys.modules, "genrecnn_test_exploding_plugin", None)  # import fails
    monkeypatch.setattr(md, "entry_points", lambda group=None: good + [broken])

    class Unknown(NumpyBackend):
        name = "weird"
        ops = frozenset({"conv1d", "fft_conv"})

    raising = types.SimpleNamespace(genrecnn_backends=hookimpl(lambda: 1 / 0))
    notabackend = types.SimpleNamespace(genrecnn_backends=hookimpl(lambda: [object]))
    unknown = types.SimpleNamespace(genrecnn_backends=hookimpl(lambda: [Unknown]))
    reg = build_registry(extra_plugins=[raising, notabackend, unknown])
    assert reg.infos["numpy"].available
    assert "plugin failed to load" in reg.infos["exploding"].reason
    assert any("ZeroDivisionError" in i.reason for i in reg.infos.values())
    assert any("not a named genrecnn.engine.ops.Backend" in i.reason for i in reg.infos.values())
    assert "unknown op(s) fft_conv" in reg.infos["weird"].reason
    assert not reg.infos["weird"].available


def test_declared_ops_inferred_from_overrides():
    class Partial(Backend):
        name = "partial"

        def dense(self, x, w, b):
            return x @ w + b

        def dense_backward(self, x, w, dy):
            return dy @ w.T, x.T @ dy, dy.sum(0)

    assert Partial.declared_ops() == {"dense"}
    with pytest.raises(BackendError, match="does not implement op 'conv1d'"):
        Partial().conv1d(None, None, None)


# -- training primitives ----------------------------------------------------------------------

def test_linear_schedule_follows_the_dissertation():
    """eps_k = (1 - (k - 1) / N) eps_0 for epoch k of N, constant within an epoch."""
    rates = [learning_rate("linear", 0.1, step, 12, 3) for step in range(12)]
    assert [round(r, 6) for r in rates[::3]] == [0.1, 0.075, 0.05, 0.025]
    assert rates[0] == rates[1] == rates[2]


def test_onecycle_and_cosine_schedules():
    total = 100
    one = [learning_rate("onecycle", 1.0, s, total, 10) for s in range(total)]
    assert one[0] == pytest.approx(1 / 25) and max(one) == pytest.approx(1.0, rel=1e-3)
    assert int(np.argmax(one)) in (29, 30) and one[-1] < 1e-3
    cos = [learning_rate("cosine", 1.0, s, total, 10) for s in range(total)]
    assert cos[0] == 1.0 and all(a >= b for a, b in zip(cos, cos[1:])) and cos[-1] < 1e-3


@pytest.mark.parametrize("opt_cls", [SGD, Adam])
def test_training_is_seeded_and_learns(opt_cls):
    x, y = batch(48, seed=1)
    x[y == 1, 2] += 2.0
    x[y == 2, 4, ::2] += 3.0
    losses = []
    for _ in range(2):
        net = tiny_net(seed=5)
        opt = opt_cls(lr=0.05 if opt_cls is SGD else 0.01)
        s = TrainSettings(epochs=15, batch_size=8, optimizer="sgd" if opt_cls is SGD else "adam",
                          seed=7)
        hist = fit(net, opt, Parts(x, y, x[:6], y[:6], np.arange(6)), s)
        losses.append([row["train_loss"] for row in hist])
    assert losses[0] == losses[1]
    assert losses[0][-1] < 0.5 * losses[0][0]


# -- model files ----------------------------------------------------------------------------

def test_model_round_trip(tmp_path):
    net = tiny_net(dtype="float32")
    x, _ = batch()
    path = tmp_path / "m.npz"
    save_model(path, net, {"class_names": ["a", "b", "c"]}, {"norm/mean": np.arange(5.0)})
    back, meta, extra = load_model(path)
    assert meta["class_names"] == ["a", "b", "c"]
    np.testing.assert_array_equal(extra["norm/mean"], np.arange(5.0))
    np.testing.assert_array_equal(back.predict_proba(x), net.predict_proba(x))
    assert back.dtype == "float32"
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]   # no temp files left


def test_bad_model_files(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ModelFileError, match="not a readable genrecnn model"):
        load_model(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a genrecnn model"):
        load_model(tmp_path / "other.npz")
    save_model(tmp_path / "m.safetensors", tiny_net())
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        load_model(tmp_path / "cut.safetensors")
    assert not zipfile.is_zipfile(tmp_path / "m.safetensors")


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_model(path, tiny_net(seed=1))
    before = path.read_bytes()
    write = Path.write_bytes

    def half_then_full_disk(self, data):
        write(self, data[: len(data) // 2])
        raise OSError("disk full")
    monkeypatch.setattr(Path, "write_bytes", half_then_full_disk)
    with pytest.raises(OSError):
        save_model(path, tiny_net(seed=2))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
