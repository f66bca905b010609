"""The fit loop: reproducible, checkpoints every epoch, exact resume, optimiser state."""
import numpy as np
import pytest

from genrecnn.run.model_io import read_model_file
from genrecnn.engine.optim import SGD, Adam, AdamW
from genrecnn.run.checkpoint import Checkpoint, load_checkpoint
from genrecnn.run.fit import fit
from genrecnn.run.parts import Parts
from genrecnn.run.settings import TrainingError, TrainSettings, new_network


def _parts(seed=0, n=48, n_mels=16, frames=24):
    """Two separable classes: class 1 has more energy in the top bands."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(0, 1, (n, n_mels, frames)).astype(np.float32)
    x[y == 1, n_mels // 2:, :] += 1.5
    return Parts(x[:32], y[:32], x[32:], y[32:], np.arange(n - 32))


def _run(tmp_path, settings, stop_at=None, name="model.safetensors"):
    parts = _parts()
    net = new_network(settings, 16, 24, 2)
    opt = settings.make_optimizer()
    ck = Checkpoint(tmp_path / name, meta={"class_names": ["a", "b"]})
    if stop_at is not None:
        first = TrainSettings.from_dict(dict(settings.as_dict(), epochs=stop_at))
        hist = fit(net, opt, parts, first, checkpoint=ck)
        assert len(hist) == stop_at
        net, meta, _, opt, selection = load_checkpoint(tmp_path / name, epochs=settings.epochs)
        assert meta["epoch"] == stop_at
        return net, fit(net, opt, parts, settings, checkpoint=ck, start_epoch=meta["epoch"],
                        history=meta["history"], selection=selection)
    return net, fit(net, opt, parts, settings, checkpoint=ck)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_resume_matches_uninterrupted_run(tmp_path, optimizer):
    settings = TrainSettings(epochs=4, batch_size=8, optimizer=optimizer, norm="none",
                             arch="small", seed=3)
    full_net, full_hist = _run(tmp_path, settings, name="full.npz")
    res_net, res_hist = _run(tmp_path, settings, stop_at=2, name="resumed.npz")
    a, b = full_net.host_params(), res_net.host_params()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    strip = [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in full_hist]
    assert strip == [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in res_hist]


def test_same_seed_same_result_other_seed_differs(tmp_path):
    s = TrainSettings(epochs=2, batch_size=8, norm="none", seed=1)
    _, h1 = _run(tmp_path, s, name="a.npz")
    _, h2 = _run(tmp_path, s, name="b.npz")
    _, h3 = _run(tmp_path, TrainSettings(epochs=2, batch_size=8, norm="none", seed=2),
                 name="c.npz")
    assert h1[-1]["train_loss"] == h2[-1]["train_loss"]
    assert h1[-1]["train_loss"] != h3[-1]["train_loss"]


def test_learns_separable_classes_and_checkpoints_each_epoch(tmp_path):
    s = TrainSettings(epochs=6, batch_size=8, norm="none", seed=0)
    seen = []
    parts = _parts()
    net = new_network(s, 16, 24, 2)
    ck = Checkpoint(tmp_path / "m.npz")

    def on_epoch(row):
        header, _, extra = read_model_file(tmp_path / "m.npz")
        seen.append((header["meta"]["epoch"], any(k.startswith("optim/") for k in extra)))
    hist = fit(net, s.make_optimizer(), parts, s, checkpoint=ck, on_epoch=on_epoch)
    assert seen == [(e, True) for e in range(1, 7)]
    assert hist[-1]["test_acc"] >= 0.9
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc"} <= hist[0].keys()


def test_settings_make_their_optimiser():
    assert isinstance(TrainSettings(optimizer="sgd", lr=0.1, epochs=4).make_optimizer(), SGD)
    assert type(TrainSettings().make_optimizer()) is Adam
    adamw = TrainSettings(optimizer="adamw", weight_decay=0.01).make_optimizer()
    assert isinstance(adamw, AdamW) and adamw.decoupled


def test_optimizer_state_round_trip():
    s = TrainSettings(epochs=1, batch_size=8, norm="none")
    net = new_network(s, 16, 24, 2)
    opt = s.make_optimizer()
    fit(net, opt, _parts(), s)
    arrays = opt.state_arrays()
    assert len(arrays) == 2 * sum(1 for _ in net.parameters())   # Adam: m and v
    other = s.make_optimizer()
    other.load_state_arrays(net, arrays)
    for k, v in other.state_arrays().items():
        np.testing.assert_array_equal(v, arrays[k])
    with pytest.raises(Exception, match="does not fit"):
        other.load_state_arrays(net, {k: v[..., :1] for k, v in arrays.items()})


def test_divergence_is_a_clear_error():
    s = TrainSettings(epochs=2, batch_size=8, norm="none", optimizer="sgd", lr=1e30)
    net = new_network(s, 16, 24, 2)
    with pytest.raises(TrainingError, match="diverged"):
        with np.errstate(all="ignore"):
            fit(net, s.make_optimizer(), _parts(), s)


def test_bad_settings_are_rejected():
    with pytest.raises(TrainingError, match="optimiser"):
        TrainSettings(optimizer="rmsprop")
    with pytest.raises(TrainingError, match="positive"):
        TrainSettings(lr=-1.0)


def test_clip_decisions_mean_and_majority():
    from genrecnn.run.evaluation import clip_decisions
    # clip 7: two windows mildly say class 0, one strongly class 1
    probs = np.array([[0.6, 0.4], [0.6, 0.4], [0.0, 1.0], [0.9, 0.1]])
    clip = np.array([7, 7, 7, 3])
    clips, mean = clip_decisions(probs, clip, "mean")
    assert clips.tolist() == [3, 7] and mean.tolist() == [0, 1]
    assert clip_decisions(probs, clip, "majority")[1].tolist() == [0, 0]


def test_interval_is_the_dissertations_formula():
    from genrecnn.run.evaluation import MethodScore, interval95
    assert interval95(0.2, 5, 40) == pytest.approx(1.96 * np.sqrt(0.2 * 0.8 / 200))
    s = MethodScore("x")
    s.add(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), 2)
    s.add(np.array([0, 1, 1, 0]), np.array([0, 1, 1, 0]), 2)
    assert s.error == pytest.approx(0.125)
    assert s.half_width == pytest.approx(1.96 * np.sqrt(0.125 * 0.875 / 8))
    assert s.mean_confusion().tolist() == [[2, 0], [0.5, 1.5]]
