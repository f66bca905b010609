"""One training session shared by train and evaluate: train_once, the typed run
options, and a resumed run's checkpoint read once."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.register_assert_rewrite("badinput")
from badinput import run_cli  # noqa: E402

from genrecnn.run.options import RunOptions  # noqa: E402
from genrecnn.run.parts import Parts  # noqa: E402
from genrecnn.run.session import Resumed, train_once  # noqa: E402
from genrecnn.run.settings import TrainSettings, new_network  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")
SETTINGS = TrainSettings(epochs=2, batch_size=8, norm="none", seed=1)


def _parts(n=32, n_mels=8, frames=24):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = rng.normal(0, 1, (n, n_mels, frames)).astype(np.float32)
    x[y == 1, n_mels // 2:, :] += 1.5
    return Parts(x[:24], y[:24], x[24:], y[24:], np.arange(n - 24))


def _net():
    net = new_network(SETTINGS, 8, 24, 2)
    net.place("numpy")
    return net


def test_train_once_trains_and_predicts_the_test_part():
    lines = []
    trained = train_once(_net(), _parts(), SETTINGS, RunOptions(), echo=lines.append)
    assert [row["epoch"] for row in trained.history] == [1, 2]
    assert trained.network.steps == 2 * 3                          # 24 items, batch 8
    assert trained.test_probs.shape == (8, 2)
    assert np.allclose(trained.test_probs.sum(axis=1), 1)
    assert lines[0].startswith("steps: device (") and len(lines) == 3


def test_train_once_from_a_finished_checkpoint_only_predicts():
    net = _net()
    before = net.host_params()
    done = Resumed(SETTINGS.make_optimizer(), epoch=2, history=[{"epoch": 1}, {"epoch": 2}])
    lines = []
    trained = train_once(net, _parts(), SETTINGS, RunOptions(), resumed=done,
                         echo=lines.append)
    assert trained.history == done.history and net.steps == 0
    assert all(np.array_equal(before[k], v) for k, v in net.host_params().items())
    assert trained.test_probs.shape == (8, 2)
    assert "already trained 2 epoch(s); nothing more to do" in lines[0]


def test_a_finished_checkpoint_predicts_with_its_selected_epoch():
    """As fit ends: the weights of the epoch chosen on the validation part, which the
    model file holds (the network a resume reads holds the last epoch's)."""
    from genrecnn.run.fit import predict_proba
    from genrecnn.run.selection import Selection
    chosen = _net()                                 # seed 1: other weights than seed 0's
    net = new_network(TrainSettings(epochs=2, batch_size=8, norm="none", seed=0), 8, 24, 2)
    net.place("numpy")
    done = Resumed(SETTINGS.make_optimizer(), epoch=2, history=[{"epoch": 1}, {"epoch": 2}],
                   selection=Selection(1, 0.9, 0.1, chosen.host_params()))
    parts = _parts()
    last, expected = predict_proba(net, parts.x_test), predict_proba(chosen, parts.x_test)
    assert np.abs(last - expected).max() > 1e-4
    trained = train_once(net, parts, SETTINGS, RunOptions(), resumed=done)
    np.testing.assert_array_equal(trained.test_probs, expected)


def test_run_options_choose_the_recipe_by_data_and_hold_paths():
    assert RunOptions().settings().recipe == "small"                 # the synthetic default
    options = RunOptions(data="somewhere", split_dir="split", epochs=3)
    assert isinstance(options.data, Path) and isinstance(options.split_dir, Path)
    assert options.settings().recipe == "cnn2d-global" and options.settings().epochs == 3
    assert RunOptions(resident_mb=2).resident_budget == 2 << 20


def test_resume_reads_the_model_file_once(npy_data, tmp_path, capsys, monkeypatch):
    import genrecnn.run.model_io as model_io
    args = ["train", npy_data, "--recipe", "small", "--test-fraction", "0.34",
            "--out", tmp_path]
    code, _, _ = run_cli(args + ["--epochs", "1"], capsys)
    assert code == 0
    reads = []
    real = model_io.read_model_file               # what every read of a model file goes through
    monkeypatch.setattr(model_io, "read_model_file",
                        lambda path: reads.append(Path(path)) or real(path))
    code, out, _ = run_cli(args + ["--epochs", "2", "--resume"], capsys)
    assert code == 0 and "resuming at epoch 2 of 2" in out
    assert reads == [tmp_path / "model.safetensors"]
