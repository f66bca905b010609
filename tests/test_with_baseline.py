"""`train --with-baseline` (issue 21, item 3): the baseline fitted on the network's training
items and kept in the model file as tensors, the model answering with the mean of both
models' probabilities in predict, the test part scored three ways in metrics.json, and
export leaving the baseline out with a note. A model without it is written as before."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from safetensors import safe_open

from badinput import edit_model, one_error_line, run_cli, write_npy_clip
from genrecnn.music.baseline import Baseline, item_features
from genrecnn.music.splits import stratified_split
from genrecnn.run.data import load_run_data
from genrecnn.run.inference import features_probabilities, load_inference_model
from genrecnn.run.model_io import MODEL_FILE
from genrecnn.run.options import RunOptions

pytestmark = pytest.mark.usefixtures("own_cache")
TRAIN = ["--recipe", "small", "--epochs", "1", "--test-fraction", "0.34", "-q"]
KEYS = ["mean", "scale", "coef", "intercept", "classes"]


def _tensors(path) -> tuple[dict, dict]:
    with safe_open(str(path), framework="np") as fh:
        return ({k: json.loads(v) for k, v in fh.metadata().items()},
                {k: fh.get_tensor(k) for k in fh.keys()})


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Three genres of 6 clips (128 x 40), so the regression is a softmax over 3 classes."""
    root = tmp_path_factory.mktemp("three")
    rng = np.random.default_rng(1)
    for genre in ("high", "low", "mid"):
        (root / genre).mkdir()
        for i in range(6):
            path = root / genre / f"{genre}.{i:05d}.npy"
            if genre == "mid":
                np.save(path, rng.uniform(0.2, 0.6, (128, 40)).astype(np.float32))
            else:
                write_npy_clip(path, genre == "high", rng)
    return root


@pytest.fixture(scope="module")
def combined(three, tmp_path_factory):
    """(OUT of `train --with-baseline` on ``three``, its stdout)."""
    from genrecnn.cli.main import main
    out = tmp_path_factory.mktemp("combined") / "out"
    assert main(["train", str(three), *TRAIN, "--with-baseline", "--out", str(out)]) == 0
    return out


def _refit(data, rows=None) -> Baseline:
    """The baseline fitted afresh on the training part `train` splits ``data`` into."""
    ds = load_run_data(RunOptions(data=data), progress=False)
    train = stratified_split(ds, test_fraction=0.34, seed=0)[0] if rows is None else rows
    return Baseline(top_db=ds.params.top_db).fit(ds.x[train], ds.y[train], ds.n_classes)


def test_the_model_file_keeps_the_baseline_as_tensors_and_header_fields(combined, strict_json):
    header, tensors = _tensors(combined / MODEL_FILE)
    assert header["version"] == 1 and "ensemble" not in header
    assert header["meta"]["baseline"] == {"top_db": 80.0, "n_mfcc": 20, "frames": 40}
    assert header["meta"]["settings"]["with_baseline"] is True
    width = 2 * 20 + 3 * 128
    shapes = {k: tensors[f"baseline/{k}"].shape for k in KEYS}
    assert shapes == {"mean": (width,), "scale": (width,), "coef": (3, width),
                      "intercept": (3,), "classes": (3,)}
    scores = strict_json((combined / "metrics.json").read_text())["with_baseline"]
    assert set(scores) == {"network", "baseline", "combined"}
    assert all(0 <= s["test_clip_acc"] <= 1 and 0 <= s["test_acc"] <= 1 for s in scores.values())


def test_a_model_without_the_flag_is_written_without_baseline(trained, combined):
    header, tensors = _tensors(trained / MODEL_FILE)
    assert not [k for k in tensors if k.startswith("baseline")]
    assert "baseline" not in header["meta"] and "with_baseline" not in header["meta"]["settings"]
    assert "with_baseline" not in header["meta"]["run"]
    assert "with_baseline" not in json.loads((trained / "metrics.json").read_text())
    with_header, _ = _tensors(combined / MODEL_FILE)
    assert set(with_header) == set(header)
    assert set(with_header["meta"]) - set(header["meta"]) == {"baseline"}


def test_the_network_is_the_one_training_without_the_baseline_gives(three, combined, tmp_path,
                                                                    capsys):
    assert run_cli(["train", three, *TRAIN, "--out", tmp_path / "plain"], capsys)[0] == 0
    _, plain = _tensors(tmp_path / "plain" / MODEL_FILE)
    _, both = _tensors(combined / MODEL_FILE)
    assert {k for k in both if not k.startswith("baseline/")} == set(plain)
    assert all(np.array_equal(plain[k], both[k]) for k in plain)


def test_predict_answers_with_the_mean_of_the_network_and_a_refit_baseline(
        three, combined, capsys, strict_json):
    clips = [three / "mid" / "mid.00002.npy", three / "high" / "high.00004.npy"]
    code, out, err = run_cli(["predict", combined / MODEL_FILE, *clips, "--json"], capsys)
    assert code == 0 and err.count("the mean of the network's and the baseline's") == 1
    model = load_inference_model(combined / MODEL_FILE, "numpy", echo=lambda s: None)
    network_alone = replace(model, baseline=None)
    refit = _refit(three)
    for clip, row in zip(clips, strict_json(out)):
        feat = np.load(clip)
        net = features_probabilities(network_alone, feat, clip).probs
        base = refit.predict_proba(feat[None])[0]
        got = np.array([row["probabilities"][n] for n in model.names])
        assert row["combined_with_baseline"] is True
        np.testing.assert_allclose(got, (net + base) / 2, atol=1e-9)
        assert np.abs(got - net).max() > 1e-6               # the baseline counts
    code, out, err = run_cli(["predict", combined / MODEL_FILE, *clips], capsys)
    assert code == 0 and out.count("combined with the baseline") == 1
    assert "network's alone" not in err                     # no per-window output asked


def test_the_timeline_says_it_shows_the_network_alone(three, combined, tmp_path, capsys):
    code, _, err = run_cli(["predict", combined / MODEL_FILE, three / "low" / "low.00001.npy",
                            "--timeline", tmp_path / "t.png"], capsys)
    assert code == 0 and "are the network's alone" in err
    assert (tmp_path / "t.png").stat().st_size > 1000


@pytest.mark.parametrize("what, edit, arrays_edit", [
    ("coef of shape [2, 424], expected [3, 424]", None,
     lambda a: a.update({"baseline/coef": a["baseline/coef"][:2]})),
    ("no scale array", None, lambda a: a.pop("baseline/scale")),
    ("classes [0, 1, 7] for 3 classes", None,
     lambda a: a.update({"baseline/classes": np.array([0, 1, 7])})),
    ("n_mfcc 500 for 128 mel bands",
     lambda h: dict(h, meta=dict(h["meta"], baseline=dict(h["meta"]["baseline"], n_mfcc=500))),
     None),
    ("its header field is None, not an object",
     lambda h: dict(h, meta={k: v for k, v in h["meta"].items() if k != "baseline"}), None),
])
def test_a_damaged_baseline_is_refused_in_one_line(combined, three, tmp_path, capsys, what,
                                                   edit, arrays_edit):
    bad = edit_model(combined / MODEL_FILE, tmp_path / "bad.safetensors", edit=edit,
                     arrays_edit=arrays_edit)
    code, _, err = run_cli(["predict", bad, three / "low" / "low.00001.npy"], capsys)
    line = one_error_line(err)
    assert code == 2 and "holds a damaged baseline" in line and what in line, line


def test_export_leaves_the_baseline_out_with_a_note(combined, three, tmp_path, capsys,
                                                    strict_json):
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    pytest.importorskip("onnx", reason="the [onnx] extra is not installed")
    code, out, _ = run_cli(["export", combined / MODEL_FILE, tmp_path / "m.onnx"], capsys)
    notes = [ln for ln in out.splitlines() if ln.startswith("note:")]
    assert code == 0 and len(notes) == 1 and "not in the ONNX graph" in notes[0]
    answers = []
    for model in (combined / MODEL_FILE, tmp_path / "m.onnx"):
        code, out, _ = run_cli(["predict", model, three / "mid", "--json"], capsys)
        answers.append(strict_json(out))
    assert [r["combined_with_baseline"] for r in answers[1]] == [False] * 6
    network = [[r["network_probabilities"][n] for n in ("high", "low", "mid")] for r in answers[0]]
    onnx = [[r["probabilities"][n] for n in ("high", "low", "mid")] for r in answers[1]]
    assert np.abs(np.subtract(network, onnx)).max() < 1e-5


def test_resume_adds_the_baseline_and_keeps_it(three, combined, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["train", three, *TRAIN, "--out", out], capsys)[0] == 0
    code, stdout, _ = run_cli(["train", three, *TRAIN, "--out", out, "--resume",
                               "--with-baseline", "--epochs", "2"], capsys)
    assert code == 0 and "baseline: MFCC" in stdout and "the baseline alone" in stdout
    header, added = _tensors(out / MODEL_FILE)
    _, first = _tensors(combined / MODEL_FILE)
    assert all(np.array_equal(added[f"baseline/{k}"], first[f"baseline/{k}"]) for k in KEYS)
    code, stdout, _ = run_cli(["train", three, *TRAIN, "--out", out, "--resume", "--epochs",
                               "3"], capsys)
    header, kept = _tensors(out / MODEL_FILE)
    assert code == 0 and "baseline: MFCC" not in stdout        # kept, not fitted again
    assert header["meta"]["settings"]["with_baseline"] is True and header["meta"]["epoch"] == 3
    assert all(np.array_equal(added[f"baseline/{k}"], kept[f"baseline/{k}"]) for k in KEYS)


def test_the_stored_baseline_answers_as_the_fitted_one():
    """Two classes (one row of weights) and a class never seen in training."""
    rng = np.random.default_rng(5)
    x, probe = rng.uniform(size=(24, 16, 30)), rng.uniform(size=(6, 16, 30))
    for labels, n_classes in ((np.arange(24) % 2, 2), (np.array([0, 1, 3] * 8), 4)):
        fitted = Baseline().fit(x, labels, n_classes)
        np.testing.assert_allclose(fitted.linear().predict_proba(probe),
                                   fitted.predict_proba(probe), atol=1e-12)
        assert fitted.linear().coef.shape[0] == (1 if n_classes == 2 else 3)


def test_a_store_run_fits_and_judges_whole_clips(tmp_path, capsys, strict_json):
    from genrecnn.music.store import open_store
    store = tmp_path / "store"
    assert run_cli(["synth", store, "--clips", "18", "--seconds", "2", "--classes", "3", "-j",
                    "1", "-q"], capsys)[0] == 0
    assert run_cli(["train", store, *TRAIN, "--crop", "32", "--with-baseline", "--out",
                    tmp_path / "out"], capsys)[0] == 0
    header, _ = _tensors(tmp_path / "out" / MODEL_FILE)
    assert header["meta"]["baseline"]["frames"] is None
    st = open_store(store)
    ds = load_run_data(RunOptions(data=store), progress=False)
    train = stratified_split(ds, test_fraction=0.34, seed=0)[0]
    refit = Baseline().fit_features(np.concatenate([item_features(st.clip(i)[None])
                                                    for i in train]), ds.y[train], 3)
    code, out, _ = run_cli(["predict", tmp_path / "out" / MODEL_FILE, store, "--json"], capsys)
    assert code == 0
    for i, row in enumerate(strict_json(out)[:3]):
        want = refit.predict_proba(np.asarray(st.clip(i))[None])[0]
        got = [row["baseline_probabilities"][n] for n in ds.class_names]
        assert np.allclose(got, want, atol=1e-9)
