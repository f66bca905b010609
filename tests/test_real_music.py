"""Real music: classical vs metal from the GTZAN sample, through the CLI end to end.

Ten 15-20 s clips, cut into half-overlapping windows of 128 frames (~3 s): the
default recipe (the one chosen on 30-s images) must decide test clips well above
chance (0.5) on audio too, evaluate must run (the lighter cnn2d recipe, a few epochs),
and predict / filters must run on one of the files.
"""

import pytest

from genrecnn.cli.main import main
from genrecnn.run.settings import DEFAULT_RECIPE
from badinput import run_cli
from shared_data import SAMPLE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SAMPLE / "metal").is_dir() or not (SAMPLE / "classical").is_dir(),
                       reason=f"GTZAN sample not found at {SAMPLE}: real-music tests need it"),
]
DATA = ["--genres", "classical,metal", "--windows", "128"]


@pytest.fixture(scope="module", autouse=True)
def feature_cache(tmp_path_factory):
    """One feature cache for the module: the clips are decoded once."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GENRECNN_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


def run(argv, capsys):
    code, out, err = run_cli(argv, capsys, seconds=1800)    # real clips: minutes on 2 cores
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    # 16 epochs: fewer steps leave batch norm's running statistics unsettled
    code = main(["train", str(SAMPLE), *DATA, "--epochs", "16", "--test-fraction", "0.4",
                 "--out", str(out), "--json"])
    assert code == 0
    return out


def test_train_classical_vs_metal(model, strict_json):
    m = strict_json((model / "metrics.json").read_text())
    assert m["class_names"] == ["classical", "metal"]
    assert m["settings"]["recipe"] == DEFAULT_RECIPE
    assert m["test_clips"] == 4
    assert m["test_clip_acc"] >= 0.75          # chance is 0.5
    assert m["history"][-1]["train_loss"] < m["history"][0]["train_loss"]


def test_evaluate_classical_vs_metal(tmp_path, capsys, strict_json):
    out = run(["evaluate", SAMPLE, *DATA, "--repeats", "2", "--test-fraction", "0.4",
               "--recipe", "cnn2d", "--epochs", "4", "--json", "--out", tmp_path / "cm.png"],
              capsys)
    rep = strict_json(out)
    assert rep["partitions"] == 2 and rep["network"]["test_clips"] == [4, 4]
    assert rep["network"]["accuracy"] >= 0.75
    assert rep["baseline"]["accuracy"] >= 0.75
    assert rep["network"]["interval95"] >= 0


def test_predict_and_filters_on_a_real_clip(model, tmp_path, capsys, strict_json):
    clip = SAMPLE / "metal" / "metal.00002.wav"
    res = strict_json(run(["predict", model / "model.safetensors", clip, "--json"], capsys))
    assert res[0]["windows"] > 1                 # a 15-20 s clip is several 3 s windows
    assert {g["genre"] for g in res[0]["top"]} == {"classical", "metal"}
    out = run(["filters", model / "model.safetensors", clip, "--filters", "0,1,2",
               "--out", tmp_path / "filters.png"], capsys)
    assert "wrote" in out and (tmp_path / "filters.png").stat().st_size > 10000
