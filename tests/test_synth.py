"""`genrecnn synth`: a seeded corpus of the synthetic genres, as a store or as audio."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from genrecnn.cli.main import main
from genrecnn.music.store import open_store
from genrecnn.music.synth_mel import mel_clip


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_same_seed_same_store_whatever_the_jobs(tmp_path, capsys):
    args = ["--clips", "12", "--seconds", "2", "-q", "--shard-mb", "1"]
    assert run(capsys, "synth", tmp_path / "a", *args, "-j", "1")[0] == 0
    code, out, err = run(capsys, "synth", tmp_path / "b", *args, "-j", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["classes"] == ["chime", "drone", "pulse", "swing"]
    assert run(capsys, "synth", tmp_path / "c", *args, "--seed", "1")[0] == 0
    a, b, c = (open_store(tmp_path / n) for n in "abc")
    assert a.clip_ids == b.clip_ids == c.clip_ids and len(a) == 12
    assert np.array_equal(a.labels, np.repeat([0, 1, 2, 3], 3)) and set(a.frames.tolist()) == {87}
    for i in range(12):
        x = a.clip(i)
        assert np.array_equal(x, b.clip(i)) and not np.array_equal(x, c.clip(i))
        assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() == 1.0


def test_classes_learnable_but_not_trivially(tmp_path, capsys):
    """Logistic regression on band means and frame-to-frame change (timbre and rhythm):
    well above chance (25%), yet not every clip right."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    assert run(capsys, "synth", tmp_path / "s", "--clips", "240", "--seconds", "3", "-q")[0] == 0
    store = open_store(tmp_path / "s")
    feats = np.array([np.concatenate([x.mean(1), np.abs(np.diff(x, axis=1)).mean(1)])
                      for x in (store.clip(i) for i in range(len(store)))])
    accuracy = cross_val_score(LogisticRegression(C=0.1, max_iter=3000), feats, store.labels,
                               cv=4).mean()
    assert 0.6 < accuracy < 0.995, accuracy


def test_audio_corpus_in_genre_folders(tmp_path, capsys):
    code, out, err = run(capsys, "synth", tmp_path / "w", "--clips", "4", "--seconds", "1",
                         "--classes", "2", "--audio", "-q")
    assert code == 0 and "4 clips of 1 s (drone, pulse) -> audio" in out, err
    files = sorted(p.relative_to(tmp_path / "w").as_posix() for p in (tmp_path / "w").rglob("*.wav"))
    assert files == ["drone/drone.000000.wav", "drone/drone.000001.wav",
                     "pulse/pulse.000000.wav", "pulse/pulse.000001.wav"]
    y, sr = sf.read(tmp_path / "w" / files[0])
    assert sr == 22050 and len(y) == 22050 and np.abs(y).max() > 0.1


@pytest.mark.parametrize("args, message", [
    (["--classes", "5"], "--classes 5: the synthetic store corpus has 2 to 4 classes"),
    (["--clips", "0"], "--clips 0 --seconds 30.0: give at least 1 clip of at least 0.5 s"),
    (["--jobs", "0"], "--jobs 0: give at least 1 worker process"),
])
def test_bad_options_one_line(tmp_path, capsys, args, message):
    code, _, err = run(capsys, "synth", tmp_path / "x", *args, "-q")
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "x").exists()


def test_existing_output_is_refused(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    code, _, err = run(capsys, "synth", tmp_path / "full", "--clips", "2", "-q")
    assert code == 2 and "already exists and is not an empty folder; choose a new OUT" in err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_mel_clip_is_fast():
    """Thousands of clips a second is the point (a loose bound: shared CI cores)."""
    import time

    rng = np.random.default_rng(0)
    mel_clip("swing", 1292, rng)
    start = time.perf_counter()
    for name in ("pulse", "drone", "chime", "swing") * 5:
        mel_clip(name, 1292, rng)
    assert (time.perf_counter() - start) / 20 < 0.1


def test_features_will_not_replace_a_synthetic_store(tmp_path, capsys):
    for genre in ("a", "b"):
        (tmp_path / "data" / genre).mkdir(parents=True)
        np.save(tmp_path / "data" / genre / "x.npy", np.random.default_rng(0).uniform(
            0, 1, (128, 40)).astype(np.float32))
    assert run(capsys, "synth", tmp_path / "s", "--clips", "4", "--seconds", "1", "-q")[0] == 0
    code, _, err = run(capsys, "features", tmp_path / "data", "--store", tmp_path / "s", "-q",
                       "-j", "1", "--cache-dir", tmp_path / "c")
    assert code == 2 and "holds a synthetic corpus (genrecnn synth)" in err
    assert len(open_store(tmp_path / "s")) == 4
    code, _, err = run(capsys, "features", tmp_path / "data", "--store", tmp_path / "f", "-q",
                       "-j", "1", "--cache-dir", tmp_path / "c")
    assert code == 0 and len(open_store(tmp_path / "f")) == 2, err
