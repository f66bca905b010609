"""Label smoothing (--label-smoothing), weight averaging (--swa) and precise batch-norm
statistics (--precise-bn): the options reach the loss, the loss follows its formula, the
average is the mean of the epochs' weights, the statistics the mean over the pass, a resume
goes on with the average, and bad values are one clear line."""
import json

import numpy as np
import pytest

from badinput import one_error_line, run_cli
from genrecnn.backends.numpy_backend.backend import NumpyBackend
from genrecnn.engine.architectures import build_network
from genrecnn.engine.batches import StepOptions, assemble_on_host, epoch_rng, plan_epoch
from genrecnn.engine.items import ArrayItems
from genrecnn.errors import BackendError
from genrecnn.run.averaging import PASS_EPOCH, continue_average, precise_batchnorm
from genrecnn.run.checkpoint import Checkpoint
from genrecnn.run.ensemble_file import read_saved_members
from genrecnn.run.fit import fit
from genrecnn.run.parts import Parts
from genrecnn.run.settings import TrainingError, TrainSettings
from plugins import registry_with

N_MELS, FRAMES, CLASSES = 6, 12, 3
# batch norm first, so the statistics it gathers are those of the input crops themselves
TINY = [{"type": "batchnorm"}, {"type": "conv", "filters": 4, "width": 3},
        {"type": "act", "fn": "relu"}, {"type": "gpool"}, {"type": "fc", "units": "classes"},
        {"type": "softmax"}]


def _net(seed=0):
    return build_network(TINY, (N_MELS, FRAMES), CLASSES, seed=seed)


def _parts(valid=False):
    rng = np.random.default_rng(1)
    y = np.arange(40) % CLASSES
    x = rng.normal(0, 1, (40, N_MELS, FRAMES + 4)).astype(np.float32)
    x += y[:, None, None] * np.linspace(-1, 1, N_MELS)[None, :, None]
    va = (x[24:32], y[24:32]) if valid else (None, None)
    return Parts(x[:24], y[:24], x[32:], y[32:], np.arange(8), x_valid=va[0], y_valid=va[1])


def _items():
    parts = _parts()
    return ArrayItems(parts.x_train, parts.y_train)


def _settings(**kw):
    return TrainSettings(**dict(dict(arch="small", epochs=4, batch_size=8, norm="none", seed=2,
                                     crop=FRAMES), **kw))


def _fit(settings, parts=None, on_epoch=None, **kw):
    net = _net(settings.seed)
    history = fit(net, settings.make_optimizer(), parts or _parts(), settings, on_epoch=on_epoch,
                  **kw)
    return net, history


# -- label smoothing --------------------------------------------------------------------------

def test_smoothing_changes_the_loss_as_the_formula_says():
    net, eps = _net(), 0.2
    x = np.random.default_rng(0).normal(size=(5, N_MELS, FRAMES))
    y = np.array([0, 1, 2, 1, 0])
    plain, probs = net.loss_and_grads_pairs(x, y, y, np.ones(5))
    smooth, probs2 = net.loss_and_grads_pairs(x, y, y, np.ones(5), smoothing=eps)
    np.testing.assert_allclose(probs2, probs, rtol=1e-6)
    logp = np.log(probs.astype(np.float64))
    want = np.mean(-(1 - eps) * logp[np.arange(5), y] - eps * logp.mean(axis=1))
    np.testing.assert_allclose(plain, -logp[np.arange(5), y].mean(), rtol=1e-5)
    np.testing.assert_allclose(smooth, want, rtol=1e-5)
    assert abs(smooth - plain) > 1e-3


def _record_smoothing(monkeypatch):
    """The keywords each call of the train_loss ops got."""
    seen = []
    for name in ("softmax_cross_entropy_acc", "softmax_cross_entropy_acc_backward"):
        orig = getattr(NumpyBackend, name)

        def spy(self, *args, _orig=orig, _name=name, **kw):
            seen.append((_name, kw))
            return _orig(self, *args, **kw)
        monkeypatch.setattr(NumpyBackend, name, spy)
    return seen


@pytest.mark.parametrize("eps", [0.0, 0.15])
def test_the_option_reaches_the_loss_and_is_left_out_at_zero(npy_data, tmp_path, capsys,
                                                             monkeypatch, eps):
    seen = _record_smoothing(monkeypatch)
    args = ["train", npy_data, "--recipe", "small", "--epochs", "1", "--out", tmp_path / "o"]
    code, _, _ = run_cli(args + (["--label-smoothing", eps] if eps else []), capsys)
    assert code == 0 and seen
    assert all(kw == ({"smoothing": eps} if eps else {}) for _, kw in seen), seen[:2]
    assert {name for name, _ in seen} == {"softmax_cross_entropy_acc",
                                          "softmax_cross_entropy_acc_backward"}
    saved = json.loads((tmp_path / "o" / "metrics.json").read_text())["settings"]
    assert saved.get("label_smoothing", 0.0) == eps        # left out where it is off


class NoBatches(NumpyBackend):
    """The on-device loss, but no resident batches: every step is assembled on the host."""

    name = "nobatches"
    ops = NumpyBackend.declared_ops() - {"batch", "staging"}


class NoLoss(NumpyBackend):
    """Everything but the on-device loss."""

    name = "noloss"
    ops = NumpyBackend.declared_ops() - {"train_loss"}


def _epoch_loss(backend, eps, reg):
    from genrecnn.engine.steps import StepRunner
    net, settings = _net(), _settings(label_smoothing=eps)
    net.place(backend, registry=reg)
    runner = StepRunner(net, settings.make_optimizer(), _items(), settings)
    plans = plan_epoch(24, N_MELS, FRAMES + 4, FRAMES, settings, epoch_rng(2, 1))
    loss, _ = runner.run_epoch(plans, [1e-2] * len(plans))
    runner.close()
    return runner.path, loss


def test_smoothing_on_the_host_path_is_the_device_paths():
    reg = registry_with(NoBatches, NoLoss)
    path, host = _epoch_loss("nobatches", 0.3, reg)
    assert path == "host"
    assert _epoch_loss("numpy", 0.3, reg) == ("device", pytest.approx(host, rel=1e-5))
    assert _epoch_loss("nobatches", 0.0, reg)[1] != pytest.approx(host, rel=1e-3)


def test_smoothing_needs_the_train_loss_ops_on_the_output_backend():
    from genrecnn.engine.steps import StepRunner
    net = _net()
    net.place("softmax=noloss,default=numpy", registry=registry_with(NoBatches, NoLoss))
    with pytest.raises(BackendError, match="label smoothing needs the 'train_loss' ops"):
        StepRunner(net, _settings().make_optimizer(), _items(), _settings(label_smoothing=0.1))


# -- weight averaging -------------------------------------------------------------------------

def test_swa_is_the_mean_of_the_last_epochs_parameters():
    plain, snapshots = _settings(epochs=4), []
    net = _net(plain.seed)
    fit(net, plain.make_optimizer(), _parts(), plain,
        on_epoch=lambda row: snapshots.append(net.host_params()))
    averaged, history = _fit(_settings(epochs=4, swa=3))
    got = averaged.host_params()
    for key in (f"{layer.name}/{k}" for layer, k, _ in averaged.parameters()):
        want = np.mean([s[key].astype(np.float64) for s in snapshots[1:]], axis=0)
        np.testing.assert_allclose(got[key], want, rtol=1e-5, atol=1e-6, err_msg=key)
    assert history[-1]["swa_epochs"] == [2, 4] and history[-1]["bn_batches"] == 3
    assert "final_test_acc" in history[-1]


def test_swa_replaces_selection_by_the_valid_part():
    _, history = _fit(_settings(epochs=3, swa=2, select="valid"), parts=_parts(valid=True))
    assert not any(row.get("selected") for row in history)
    assert "valid_acc" in history[0] and "final_valid_acc" in history[-1]


def test_a_resumed_swa_run_ends_where_the_uninterrupted_one_does(tmp_path):
    settings = _settings(epochs=4, swa=2)
    whole, _ = _fit(settings)

    class Stop(Exception):
        pass

    def stop_after_3(row):
        if row["epoch"] == 3:
            raise Stop
    path = tmp_path / "model.safetensors"
    with pytest.raises(Stop):
        _fit(settings, on_epoch=stop_after_3, checkpoint=Checkpoint(path))
    _, _, [saved] = read_saved_members(path)
    assert saved.resumed.epoch == 3
    assert (saved.resumed.average.first, saved.resumed.average.count) == (3, 1)
    net, r = saved.network, saved.resumed
    fit(net, r.optimizer, _parts(), settings, start_epoch=3, history=r.history,
        average=r.average, checkpoint=Checkpoint(path))
    want = whole.host_params()
    for key, value in net.host_params().items():
        np.testing.assert_allclose(value, want[key], rtol=1e-6, atol=1e-7, err_msg=key)
    # the finished file answers with the average; a resume goes on from the trained weights
    _, _, [done] = read_saved_members(path)
    assert done.resumed.stored is not None
    for key, value in done.resumed.stored.items():
        np.testing.assert_allclose(value, want[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_a_resume_that_moves_the_window_over_averaged_epochs_is_refused():
    from genrecnn.run.averaging import WeightAverage
    old = WeightAverage(3, 2, {"w": np.zeros(1)})            # epochs 3-4 of a 4-epoch run
    with pytest.raises(TrainingError, match="holds epochs 3-4.*--epochs"):
        continue_average(old, _settings(epochs=5, swa=2), 4)  # needs epoch 4 alone
    assert continue_average(old, _settings(epochs=9, swa=2), 4).count == 0     # none yet
    assert continue_average(old, _settings(epochs=4, swa=2), 4) is old
    assert continue_average(None, _settings(epochs=4, swa=0), 2) is None


def test_a_resume_cannot_switch_averaging_on(npy_data, tmp_path, capsys):
    """A file of a run without --swa leaves the setting out; a resume still reads it as off."""
    out = tmp_path / "o"
    base = ["train", npy_data, "--recipe", "small", "--out", out]
    assert run_cli(base + ["--epochs", "1"], capsys)[0] == 0
    code, _, err = run_cli(base + ["--epochs", "2", "--resume", "--swa", "1"], capsys)
    assert code == 2 and "--swa 1 differs from 0 in the checkpoint" in one_error_line(err)


# -- precise batch norm -----------------------------------------------------------------------

def test_precise_bn_gives_the_mean_of_the_batches_statistics():
    net, items, batch = _net(), _items(), 8
    norm = net.layers[0]
    net.layers[0].state["running_mean"][:] = 123.0            # anything: the pass replaces it
    steps = net.steps
    n = precise_batchnorm(net, items, batch, seed=5)
    plans = plan_epoch(len(items), N_MELS, items.frames, FRAMES, StepOptions(batch),
                       epoch_rng(5, PASS_EPOCH))
    xs = [assemble_on_host(items, p, FRAMES)[0].astype(np.float64) for p in plans]
    assert n == len(xs) == 3
    np.testing.assert_allclose(norm.state["running_mean"],
                               np.mean([x.mean(axis=(0, 2)) for x in xs], axis=0), rtol=1e-5)
    np.testing.assert_allclose(norm.state["running_var"],
                               np.mean([x.var(axis=(0, 2), ddof=1) for x in xs], axis=0),
                               rtol=1e-4)
    assert norm.momentum == 0.1 and net.steps == steps        # both as they were


def test_precise_bn_leaves_out_a_short_last_batch_and_a_network_without_batch_norm():
    items = _items()
    assert precise_batchnorm(_net(), items, 10, seed=0) == 2     # 24 = 10 + 10 + 4
    assert precise_batchnorm(_net(), items, 30, seed=0) == 1     # the only batch stays
    plain = build_network(TINY[1:], (N_MELS, FRAMES), CLASSES)
    assert precise_batchnorm(plain, items, 8, seed=0) == 0


def test_precise_bn_alone_keeps_the_trained_weights():
    plain, _ = _fit(_settings(epochs=2))
    precise, history = _fit(_settings(epochs=2, precise_bn=True))
    a, b = plain.host_params(), precise.host_params()
    for key in (f"{layer.name}/{k}" for layer, k, _ in precise.parameters()):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.allclose(a["norm1/state/running_mean"], b["norm1/state/running_mean"])
    assert "swa_epochs" not in history[-1] and history[-1]["bn_batches"] == 3


# -- the command line -------------------------------------------------------------------------

def test_evaluate_accepts_the_options_with_an_ensemble(npy_data, tmp_path, capsys):
    code, out, err = run_cli(["evaluate", npy_data, "--recipe", "cnn2d", "--epochs", "2",
                              "--repeats", "1", "--no-baseline", "--ensemble", "2",
                              "--label-smoothing", "0.1", "--swa", "2", "--precise-bn",
                              "--out", tmp_path / "cm.png", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["ensemble"] == 2 and len(report["histories"][0]) == 2
    assert report["histories"][0][-1]["swa_epochs"] == [1, 2]
    assert "label smoothing 0.1, weights averaged over the last 2 epochs" in err


@pytest.mark.parametrize("args, phrase", [
    (["--label-smoothing", "1"], "label smoothing must be at least 0 and below 1, got 1.0"),
    (["--label-smoothing", "-0.1"], "label smoothing must be at least 0 and below 1"),
    (["--swa", "-1"], "must be 0 (off) to the run's 2 epochs, got -1"),
    (["--swa", "3"], "must be 0 (off) to the run's 2 epochs, got 3"),
])
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_bad_values_are_one_clear_line(npy_data, tmp_path, capsys, command, args, phrase):
    code, _, err = run_cli([command, npy_data, "--epochs", "2", "--out",
                            tmp_path / ("o" if command == "train" else "cm.png"), *args], capsys)
    assert code == 2 and phrase in one_error_line(err)
    assert not (tmp_path / "o").exists()


# -- on the GPU: the captured step smooths, and averaging between epochs leaves it intact ---

def _gpu_reason(name):
    from genrecnn.engine.registry import registry
    info = registry().infos.get(name)
    return "" if info is not None and info.available else (
        f"{name} backend unavailable here: {info.reason if info else 'not installed'}")


def _fit_on(backend, settings):
    from genrecnn.engine.steps import StepRunner
    net = build_network(TINY, (N_MELS, FRAMES), CLASSES, dtype="float64", seed=settings.seed)
    net.place(backend)
    opt = settings.make_optimizer()
    runner = StepRunner(net, opt, _items(), settings)
    path = runner.path
    history = fit(net, opt, _parts(), settings, runner=runner)
    return path, net.host_params(), history


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["cupy", "pycuda"])
def test_gpu_graph_steps_smooth_and_average_as_numpy_does(name):
    if _gpu_reason(name):
        pytest.skip(_gpu_reason(name))
    settings = _settings(epochs=3, swa=2, label_smoothing=0.1, lr=1e-2)
    path, got, history = _fit_on(name, settings)
    _, want, want_history = _fit_on("numpy", settings)
    assert path == "graph"
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-7, atol=1e-9, err_msg=key)
    for row, ref in zip(history, want_history):
        assert row["train_loss"] == pytest.approx(ref["train_loss"], rel=1e-9)
    assert history[-1]["swa_epochs"] == [2, 3] and history[-1]["bn_batches"] == 3
