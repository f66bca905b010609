"""2-D networks: the layers over maps, batch norm and dropout, in a network and in files."""
import numpy as np
import pytest

from genrecnn.conformance.checks import gradcheck
from genrecnn.engine import sweeps
from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.autoplace.measure import candidates
from genrecnn.engine.layers import (BatchNorm, Conv1D, Conv2D, Dense, Dropout, GlobalPool,
                                    MaxPool1D, MaxPool2D, Softmax, layer_from_config)
from genrecnn.engine.network import Network
from genrecnn.engine.optim import Adam
from genrecnn.engine.placement import resolve_placement
from genrecnn.engine.registry import registry
from plugins import needs_example
from genrecnn.errors import ModelFileError, PlacementError, ShapeError
from genrecnn.run.model_io import load_model, save_model

TINY2D = [{"type": "conv2d", "filters": 3, "kernel": [3, 2], "stride": [1, 2], "padding": [1, 1]},
          {"type": "batchnorm", "momentum": 0.5},
          {"type": "act", "fn": "tanh"},
          {"type": "pool2d", "size": [2, 2]},
          {"type": "conv2d", "filters": 4, "kernel": 2},
          {"type": "batchnorm"},
          {"type": "gpool"},
          {"type": "dropout", "rate": 0.3},
          {"type": "fc", "units": "classes"},
          {"type": "softmax"}]
NEW_KINDS = "conv=numpy,pool=numpy,norm=numpy,drop=numpy"


def tiny2d(dtype="float64", seed=0, arch=TINY2D):
    return build_network(arch, (6, 9), 3, dtype=dtype, seed=seed)


def batch(n=5, seed=0, shape=(6, 9)):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)), rng.integers(0, 3, n)


# -- shapes --------------------------------------------------------------------------------

@pytest.mark.parametrize("arch, channels, pooled", [("cnn2d", [16, 32, 64, 128], 3 * 128 * 8),
                                                     ("cnn2d-global", [32, 64, 128, 256], 768)])
def test_cnn2d_shapes_names_and_input_as_one_channel_maps(arch, channels, pooled):
    net = build_network(load_architecture(arch), (128, 256), 4)
    assert net.layers[0].input_shape == (1, 128, 256)
    assert [(l.name, l.type) for l in net.layers[:5]] == [
        ("conv1", "conv2d"), ("norm1", "batchnorm"), ("act1", "act"), ("pool1", "pool2d"),
        ("conv2", "conv2d")]
    convs = [l for l in net.layers if l.type == "conv2d"]
    assert [l.filters for l in convs] == channels
    assert all(l.kernel == (3, 3) and l.padding == (1, 1) for l in convs)
    assert [l.output_shape for l in net.layers if l.type == "pool2d"] == [
        (c, 128 // 2 ** (i + 1), 256 // 2 ** (i + 1)) for i, c in enumerate(channels)]
    gpool, drop, fc = net.layers[-4:-1]
    assert gpool.output_shape == (pooled,) and drop.rate == 0.5 and fc.output_shape == (4,)


def test_layer_shapes_with_stride_padding_and_non_square_windows():
    rng = np.random.default_rng(0)
    conv = Conv2D(5, kernel=(3, 2), stride=(2, 3), padding=(1, 0))
    assert conv.build((2, 9, 11), rng, "float32") == (5, 5, 4)
    assert conv.params["w"].shape == (5, 2, 3, 2)
    assert MaxPool2D((2, 3), (1, 2)).build((4, 5, 9), rng, "float32") == (4, 4, 4)
    assert MaxPool2D(2).build((4, 5, 9), rng, "float32") == (4, 2, 4)
    assert GlobalPool().build((4, 5, 9), rng, "float32") == (12,)
    for shape in ((7,), (7, 10), (7, 3, 4)):
        bn = BatchNorm()
        assert bn.build(shape, rng, "float32") == shape
        assert {k: v.shape for k, v in bn.state.items()} == {"running_mean": (7,),
                                                             "running_var": (7,)}
    assert layer_from_config(conv.config()).config() == conv.config()


def test_mismatched_layers_are_clear_shape_errors():
    with pytest.raises(ShapeError, match=r"'conv2' \(conv\) expects a \(channels, time\) "
                                         r"sequence but gets input of shape \(4, 6, 9\)"):
        Network([Conv2D(4, 3, padding=1), Conv1D(4, 3), GlobalPool(), Dense(2), Softmax()],
                (6, 9))
    with pytest.raises(ShapeError, match=r"'pool1' \(pool2d\) expects 2-D maps"):
        Network([Conv1D(4, 3), MaxPool2D(2), GlobalPool(), Dense(2), Softmax()], (6, 9))
    with pytest.raises(ShapeError, match="fc1.*flat vector.*global pooling"):
        Network([Conv2D(4, 3), Dense(2), Softmax()], (6, 9))
    with pytest.raises(ShapeError, match=r"conv1.*\(1, 2, 9\).*smaller than its kernel"):
        Network([Conv2D(4, 3), GlobalPool(), Dense(2), Softmax()], (2, 9))
    with pytest.raises(ShapeError, match=r"pool1.*smaller than one window"):
        Network([Conv2D(4, 3), MaxPool2D((5, 2)), GlobalPool(), Dense(2), Softmax()], (6, 9))
    with pytest.raises(ShapeError, match="kernel .* pair of integers"):
        Conv2D(4, kernel=[3, 3, 3])
    with pytest.raises(ShapeError, match="dropout rate"):
        Dropout(1.0)
    # a 1-D network still sees its input as sequences
    assert Network([MaxPool1D(2), GlobalPool(), Dense(2), Softmax()], (6, 9)).layers[
        0].input_shape == (6, 9)


# -- gradients, batch norm, dropout ---------------------------------------------------------

def test_full_network_gradient_matches_finite_differences():
    net = tiny2d()
    x, y = batch()
    named = {f"{l.name}/{k}": (l, k) for l in net.layers for k in l.params}

    def loss(**params):
        for full, value in params.items():
            layer, key = named[full]
            layer.params[key] = np.array(value)
        net.steps = 0                                    # the same dropout masks each time
        return net.loss_and_grads(x, y)[0]

    start = {full: np.array(l.params[k]) for full, (l, k) in named.items()}
    loss(**start)
    grads = {full: np.array(l.grads[k]) for full, (l, k) in named.items()}
    assert gradcheck(loss, start, grads, np.random.default_rng(0)) < 1e-6


def test_batchnorm_running_statistics_and_inference():
    net = build_network([{"type": "conv2d", "filters": 2, "kernel": 1},
                         {"type": "batchnorm", "momentum": 0.25}, {"type": "gpool"},
                         {"type": "fc", "units": "classes"}, {"type": "softmax"}],
                        (6, 9), 3, dtype="float64")
    conv, bn = net.layers[:2]
    x, y = batch()
    net.loss_and_grads(x, y)
    h = np.einsum("fc,nchw->nfhw", conv.params["w"][:, :, 0, 0], x[:, None]) \
        + conv.params["b"][None, :, None, None]
    mean, var = h.mean(axis=(0, 2, 3)), h.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.state["running_mean"], 0.25 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.state["running_var"], 0.75 + 0.25 * var, rtol=1e-12)
    # inference uses the running statistics and leaves them alone
    before = {k: v.copy() for k, v in bn.state.items()}
    probs = net.predict_proba(x)
    assert all(np.array_equal(before[k], bn.state[k]) for k in before)
    z = (h - bn.state["running_mean"][None, :, None, None]) / np.sqrt(
        bn.state["running_var"][None, :, None, None] + bn.eps)
    feats = np.concatenate([z.mean(axis=(2, 3)), z.max(axis=(2, 3)),
                            np.sqrt((z ** 2).sum(axis=(2, 3)))], axis=1)
    logits = feats @ net.layers[3].params["w"] + net.layers[3].params["b"]
    want = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, want / want.sum(axis=1, keepdims=True), rtol=1e-10)


def test_dropout_is_reproducible_from_the_seed_and_the_identity_at_inference():
    arch = [{"type": "gpool"}, {"type": "dropout", "rate": 0.5},
            {"type": "fc", "units": "classes"}, {"type": "softmax"}]
    x, y = batch(n=8)

    def masks(seed, steps):
        net = build_network(arch, (6, 9), 3, dtype="float64", seed=seed)
        out = []
        for _ in range(steps):
            net.loss_and_grads(x, y)
            out.append(net.layers[2]._cache[0] != 0)     # what fc1 saw: the kept features
        return out, net

    (a0, a1), net = masks(0, 2)
    (b0, b1), _ = masks(0, 2)
    (c0, _), _ = masks(1, 2)
    assert np.array_equal(a0, b0) and np.array_equal(a1, b1)       # same seed: same masks
    assert not np.array_equal(a0, a1) and not np.array_equal(a0, c0)   # new step, new seed
    assert 0.3 < 1 - a0.mean() < 0.7 and net.steps == 2
    key = net.layers[1].key.view(np.uint32)
    assert key.tolist() == [net.layers[1].seed, 1]                  # (seed, step) of step 1
    drop = net.layers[1]
    feats = np.ones((4, 9))
    assert drop.forward(net.backends[1], feats, train=False) is feats
    p1, p2 = net.predict_proba(x), net.predict_proba(x)
    assert np.array_equal(p1, p2)
    seeds = {l.seed for l in tiny2d(seed=0).layers} | {l.seed for l in tiny2d(seed=1).layers}
    assert len(seeds) == 2 * len(TINY2D)                             # per layer and network


# -- model files -----------------------------------------------------------------------------

def test_state_is_saved_and_loaded_with_identical_predictions(tmp_path):
    net = tiny2d(dtype="float32")
    x, y = batch()
    opt = Adam(lr=0.01)
    for _ in range(3):
        net.loss_and_grads(x, y)
        opt.step(net)
    stored = net.host_params()
    assert "norm1/state/running_mean" in stored and "norm1/gamma" in stored
    assert not np.allclose(stored["norm1/state/running_var"], 1)
    save_model(tmp_path / "m.npz", net)
    loaded, _, _ = load_model(tmp_path / "m.npz")
    assert np.array_equal(loaded.predict_proba(x), net.predict_proba(x))
    assert loaded.host_params().keys() == stored.keys()
    del stored["norm2/state/running_var"]
    fresh = tiny2d(dtype="float32")
    with pytest.raises(ShapeError, match="lack 'norm2/state/running_var'"):
        fresh.load_host_params(stored)
    np.savez(tmp_path / "bad.npz", **{"x": np.zeros(1)})
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "bad.npz")


# -- placement -------------------------------------------------------------------------------

def test_new_kinds_place_and_name():
    net = tiny2d()
    assert [l.name for l in net.layers] == ["conv1", "norm1", "act1", "pool1", "conv2", "norm2",
                                            "gpool1", "drop1", "fc1", "softmax"]
    plan = resolve_placement("norm=a,drop=b,conv=c", net.layers, ["a", "b", "c", "numpy"])
    assert plan == ["c", "a", "numpy", "numpy", "c", "a", "numpy", "b", "numpy", "numpy"]
    with pytest.raises(PlacementError, match="'lstm'.*softmax, norm, drop"):
        resolve_placement("lstm=numpy", net.layers, ["numpy"])


def test_layers_on_a_backend_without_their_ops_mix_with_numpy():
    needs_example()
    net = tiny2d()
    with pytest.raises(PlacementError, match="'example' does not implement conv2d.*'conv1'"):
        net.place("example")
    x, y = batch()
    nets = {}
    for spec in ("numpy", f"default=example,{NEW_KINDS}"):
        nets[spec] = tiny2d()
        nets[spec].place(spec)
        loss, _ = nets[spec].loss_and_grads(x, y)
        Adam(lr=0.01).step(nets[spec])
        nets[spec].loss = loss
    ref, mixed = nets.values()
    assert mixed.backend_names[6:9] == ["example", "numpy", "example"]     # gpool, drop, fc
    assert mixed.loss == pytest.approx(ref.loss, rel=1e-12)
    for full, value in ref.host_params().items():
        np.testing.assert_allclose(mixed.host_params()[full], value, rtol=1e-10, atol=1e-9)
    cands = candidates(tiny2d(), registry(), "adam")
    assert all("example" not in c for c, l in zip(cands, tiny2d().layers)
               if l.op in ("conv2d", "maxpool2d", "batchnorm", "dropout"))
    assert "example" in cands[6] and "example" in cands[8]


def test_bench_times_every_new_layer_at_its_real_shape():
    net = tiny2d(dtype="float32")
    rows = sweeps.arch_layers(net, [registry().get("numpy")], 4, optimizer="adam", reps=1,
                             budget=0.0)
    timed = {(r["layer"], r["phase"]) for r in rows}
    for layer in net.layers:
        assert (layer.name, "forward") in timed and (layer.name, "backward") in timed
    assert ("norm1", "update") in timed and ("drop1", "update") not in timed
