"""Features, datasets, splits, normalisation and the synthetic dataset."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genrecnn.music.dataset import Dataset
from genrecnn.music.features import fit_length
from genrecnn.music.loading import load_dataset
from genrecnn.music.normalize import BandNormalizer
from genrecnn.music.splits import split_from_dir, stratified_split
from genrecnn.errors import DataError
from genrecnn.music.features import (MIN_FRAMES, FeatureCache, FeatureParams, audio_to_features,
                               load_features)
from genrecnn.music.synthetic import synth_clip, synthetic_dataset
from shared_data import SAMPLE, SPLITS

P = FeatureParams()

needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"real audio sample: {SAMPLE} "
                                  f"not present on this machine")


def write_clip(path: Path, name="swing", seconds=1.5, seed=0, sr=22050):
    path.parent.mkdir(parents=True, exist_ok=True)
    y = synth_clip(name, seconds, sr, np.random.default_rng(seed))
    sf.write(path, y, sr)
    return y


# -- real music, loaded once per session ---------------------------------------------------

@pytest.fixture(scope="session")
def sample_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def classical_metal(sample_cache):
    """The classical and metal clips of the sample, cold (2 processes), with its timing."""
    if not SAMPLE.is_dir():
        pytest.skip(f"real audio sample: {SAMPLE} not present on this machine")
    cache = FeatureCache(sample_cache)
    start = time.perf_counter()
    ds = load_dataset(SAMPLE, genres="classical,metal", cache=cache, jobs=2, progress=False)
    return ds, time.perf_counter() - start, cache


@needs_sample
def test_features_of_real_clips(classical_metal):
    for rel in ("blues/blues.00000.wav", "classical/classical.00002.wav"):
        path = SAMPLE / rel
        feat = load_features(path, P)
        n = sf.info(str(path)).frames
        assert feat.shape == (128, 1 + n // 512)
        assert 646 <= feat.shape[1] <= 862
        assert feat.dtype == np.float32
        assert feat.min() >= 0.0 and feat.max() == pytest.approx(1.0)
        assert 0.2 < feat.mean() < 0.9              # music, not silence or clipping


@needs_sample
def test_load_classical_metal(classical_metal):
    ds, _, cache = classical_metal
    assert ds.class_names == ["classical", "metal"]
    assert len(ds.clip_ids) == 10 and ds.skipped == []
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64 and ds.clip.dtype == np.int64
    shortest = min(1 + sf.info(str(p)).frames // 512
                   for g in ("classical", "metal") for p in (SAMPLE / g).glob("*.wav"))
    assert ds.x.shape == (10, 128, shortest)
    assert np.bincount(ds.y).tolist() == [5, 5]
    assert ds.clip_ids[0] == "classical/classical.00000"
    assert cache.misses == 10 and cache.hits == 0


@needs_sample
def test_cache_hit_is_faster_and_identical(classical_metal, sample_cache):
    ds, cold, _ = classical_metal
    cache = FeatureCache(sample_cache)
    start = time.perf_counter()
    again = load_dataset(SAMPLE, genres=["metal", "classical"], cache=cache, jobs=1,
                         progress=False)
    warm = time.perf_counter() - start
    assert cache.hits == 10 and cache.misses == 0
    assert np.array_equal(again.x, ds.x) and again.clip_ids == ds.clip_ids
    assert warm < cold / 3, (warm, cold)


@needs_sample
def test_split_from_fault_filtered_dir(classical_metal):
    ds, _, _ = classical_metal
    split = split_from_dir(ds, SPLITS)
    train, valid, test = split
    ids = lambda idx: sorted(ds.clip_ids[c] for c in ds.clip[idx])   # noqa: E731
    assert ids(train) == ["metal/metal.00002", "metal/metal.00003"]
    assert len(valid) == 7 and len(test) == 0
    assert split.unlisted == ["metal/metal.00004"]      # filtered out of GTZAN's split
    n_listed = {n: len((SPLITS / f"{n}.txt").read_text().split()) for n in ("train", "valid",
                                                                            "test")}
    assert len(split.absent["train"]) == n_listed["train"] - 2
    assert len(split.absent["test"]) == n_listed["test"]
    line = split.report()
    assert "test 0 clips" in line and f"{n_listed['test']} listed ids absent" in line


# -- features from each input kind -------------------------------------------------------

def test_audio_formats_resampling_and_stereo(tmp_path):
    y = write_clip(tmp_path / "a.wav", seconds=1.0)
    ref = load_features(tmp_path / "a.wav")
    for ext in ("flac", "ogg", "au", "mp3"):
        try:
            sf.write(tmp_path / f"a.{ext}", y, 22050)
        except (sf.LibsndfileError, ValueError, TypeError) as exc:
            assert ext == "mp3", exc              # libsndfile < 1.1 cannot write mp3
            continue
        feat = load_features(tmp_path / f"a.{ext}")
        assert abs(feat.shape[1] - ref.shape[1]) <= 2 and feat.shape[0] == 128   # mp3 pads
        n = min(feat.shape[1], ref.shape[1])
        tol = 0.08 if ext in ("ogg", "mp3") else 1e-3      # lossy codecs
        assert np.abs(feat[:, :n] - ref[:, :n]).mean() < tol, ext
    sf.write(tmp_path / "st44k.wav", np.stack([np.repeat(y, 2)] * 2, axis=1), 44100)
    feat = load_features(tmp_path / "st44k.wav")  # stereo at 44.1 kHz -> mono at 22050
    assert feat.shape == ref.shape
    assert np.abs(feat - ref).mean() < 0.05


def test_png_input_orientation_and_scale(tmp_path):
    from PIL import Image

    feat = np.zeros((128, 40), dtype=np.float32)
    feat[0] = 1.0                              # the lowest mel band is loud
    feat[64, ::2] = 128 / 255
    Image.fromarray((feat[::-1] * 255).round().astype(np.uint8), mode="L").save(
        tmp_path / "s.png")
    got = load_features(tmp_path / "s.png")
    assert got.shape == (128, 40) and got.dtype == np.float32
    assert np.allclose(got, feat, atol=1 / 255)
    assert got[0].mean() == 1.0 and got[127].mean() == 0.0


def test_npy_input_and_wrong_bands(tmp_path):
    feat = np.random.default_rng(0).random((128, 50)).astype(np.float64)
    np.save(tmp_path / "f.npy", feat)
    assert np.allclose(load_features(tmp_path / "f.npy"), feat.astype(np.float32))
    np.save(tmp_path / "g.npy", feat[:64])
    with pytest.raises(DataError, match=r"g\.npy: has 64 mel bands.*n_mels=128"):
        load_features(tmp_path / "g.npy")


def test_audio_to_features_scale_and_silence():
    y = synth_clip("pulse", 1.0, 22050, np.random.default_rng(1))
    feat = audio_to_features(y, P)
    assert feat.shape == (128, 44) and feat.min() >= 0 and feat.max() == pytest.approx(1.0)
    assert np.allclose(audio_to_features(y * 0.1, P), feat, atol=1e-4)   # ref = max
    with pytest.raises(DataError, match="silent"):
        audio_to_features(np.zeros(22050, dtype=np.float32), P)


def test_params_round_trip_and_validation():
    p = FeatureParams(n_mels=64, fmax=8000.0)
    assert FeatureParams.from_dict(p.as_dict()) == p
    with pytest.raises(DataError, match="unknown feature parameters"):
        FeatureParams.from_dict({"n_mel": 64})
    with pytest.raises(DataError, match="fmax"):
        FeatureParams(fmax=20000.0)


# -- the cache ----------------------------------------------------------------------------

def test_cache_keyed_by_content_and_params_and_recovers(tmp_path):
    write_clip(tmp_path / "a.wav")
    cache = FeatureCache(tmp_path / "cache")
    first = load_features(tmp_path / "a.wav", P, cache)
    assert (cache.hits, cache.misses) == (0, 1)
    shutil.copy(tmp_path / "a.wav", tmp_path / "renamed.wav")      # same content, new name
    assert np.array_equal(load_features(tmp_path / "renamed.wav", P, cache), first)
    assert (cache.hits, cache.misses) == (1, 1)
    load_features(tmp_path / "a.wav", FeatureParams(n_mels=64), cache)   # other params: miss
    assert cache.misses == 2
    entries = list((tmp_path / "cache").rglob("*.npy"))
    assert len(entries) == 2 and not list((tmp_path / "cache").rglob(".*"))  # no temp files
    for e in entries:
        e.write_bytes(b"\x93NUMPY garbage")                      # corrupt every entry
    assert np.array_equal(load_features(tmp_path / "a.wav", P, cache), first)
    assert cache.misses == 3
    assert np.array_equal(load_features(tmp_path / "a.wav", P, cache), first)  # rewritten
    assert cache.hits == 2


def test_default_cache_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("GENRECNN_CACHE", str(tmp_path / "c"))
    assert FeatureCache().root == tmp_path / "c"


# -- bad input ----------------------------------------------------------------------------

@pytest.fixture
def messy(tmp_path):
    """Two genres with good clips, plus one bad file of each kind in genre a."""
    root = tmp_path / "data"
    for g, name in (("a", "pulse"), ("b", "drone")):
        for i in range(3):
            write_clip(root / g / f"{g}.{i:05d}.wav", name, seed=i)
    bad = root / "a"
    (bad / "empty.wav").write_bytes(b"")
    (bad / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + os.urandom(300))
    sf.write(bad / "silent.wav", np.zeros(22050, dtype=np.float32), 22050)
    write_clip(bad / "short.wav", seconds=0.2)                       # 9 frames
    (bad / "gone.wav").symlink_to(tmp_path / "nowhere.wav")          # unreadable
    (bad / "notes.txt").write_text("not a clip, ignored")
    return root


BAD = {"empty.wav": "empty (0 bytes)", "corrupt.wav": "corrupt or not decodable audio",
       "silent.wav": "silent (all samples zero)", "short.wav": "too short: 9 frames, at least",
       "gone.wav": "cannot be read"}


def test_bad_files_are_skipped_with_reasons(messy):
    ds = load_dataset(messy, cache=False, jobs=1, progress=False)
    assert len(ds.clip_ids) == 6 and ds.class_names == ["a", "b"]
    reasons = {Path(p).name: r for p, r in ds.skipped}
    assert set(reasons) == set(BAD)
    for name, problem in BAD.items():
        assert problem in reasons[name], (name, reasons[name])
        assert "\n" not in reasons[name] and ";" in reasons[name]   # one line, what to do


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_bad_file_alone_is_a_clear_error(messy, name):
    with pytest.raises(DataError) as err:
        load_features(messy / "a" / name, P)
    msg = str(err.value)
    assert msg.startswith(str(messy / "a" / name) + ": ")
    if name != "short.wav":                       # load_features' floor is MIN_FRAMES
        assert BAD[name] in msg
    else:
        assert f"too short: 9 frames, at least {MIN_FRAMES} needed" in msg


def test_strict_makes_bad_files_fatal(messy):
    with pytest.raises(DataError, match=r"a/\w+\.wav: .*\(and 4 more\)"):
        load_dataset(messy, cache=False, jobs=1, progress=False, strict=True)


def test_genre_folder_without_audio(messy):
    (messy / "c").mkdir()
    (messy / "c" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"genre folder .*/c has no audio, \.png or \.npy files"):
        load_dataset(messy, cache=False, jobs=1, progress=False)


def test_genre_folder_with_only_bad_files(messy):
    (messy / "c").mkdir()
    (messy / "c" / "x.wav").write_bytes(b"")
    with pytest.raises(DataError, match=r"genre folder .*/c has no usable files.*empty"):
        load_dataset(messy, cache=False, jobs=1, progress=False)


def test_fewer_than_two_genres_and_unknown_genre(messy, tmp_path):
    with pytest.raises(DataError, match="1 genre folder .*at least two"):
        load_dataset(messy, genres=["b"], cache=False, progress=False)
    with pytest.raises(DataError, match=r"unknown genres jazz, rock in .*existing genres: a, b"):
        load_dataset(messy, genres="a,jazz,rock", cache=False, progress=False)
    only = tmp_path / "one"
    write_clip(only / "a" / "x.wav")
    with pytest.raises(DataError, match="1 genre folder"):
        load_dataset(only, cache=False, progress=False)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "missing", cache=False, progress=False)


def test_one_truncated_clip_does_not_shrink_the_others(messy):
    """Default min length is half the median, so a 0.5 s clip is skipped, not used to crop."""
    for p in list((messy / "a").iterdir()):
        if p.name in BAD:
            p.unlink()
    write_clip(messy / "a" / "trunc.wav", seconds=0.5)             # 22 frames
    ds = load_dataset(messy, cache=False, jobs=1, progress=False)
    assert ds.x.shape[2] == 1 + int(1.5 * 22050) // 512
    assert [Path(p).name for p, _ in ds.skipped] == ["trunc.wav"]
    assert "too short: 22 frames, at least 33 needed" in ds.skipped[0][1]


# -- lengths, windows, splits --------------------------------------------------------------

def test_fit_length_centre_crop_and_pad():
    feat = np.arange(10, dtype=np.float32)[None].repeat(3, 0)
    assert fit_length(feat, 4)[0].tolist() == [3, 4, 5, 6]
    assert fit_length(feat, 14)[0].tolist() == [0, 0] + list(range(10)) + [0, 0]
    assert fit_length(feat, 10) is feat


def test_windows_and_lengths(messy):
    for p in list((messy / "a").iterdir()):
        if p.name in BAD:
            p.unlink()
    write_clip(messy / "b" / "long.wav", "drone", seconds=3.0)
    ds = load_dataset(messy, windows=20, cache=False, jobs=1, progress=False)
    frames = 1 + int(1.5 * 22050) // 512                              # shortest clip: 65
    per_clip = len(range(0, frames - 20 + 1, 10))                     # hop = windows // 2
    assert ds.x.shape == (7 * per_clip, 128, 20)
    assert np.bincount(ds.clip).tolist() == [per_clip] * 7
    ds2 = load_dataset(messy, frames=100, windows=50, window_hop=50, cache=False, jobs=1,
                       progress=False)
    assert ds2.x.shape == (14, 128, 50)                               # padded to 100, 2 each
    assert ds2.clip_labels().tolist() == [0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(DataError, match="windows=60 is longer than frames=50"):
        load_dataset(messy, frames=50, windows=60, cache=False, progress=False)


def _windowed(n_clips_per_class=(6, 6, 5), windows=3, seed=0):
    rng = np.random.default_rng(seed)
    y, clip = [], []
    c = 0
    for k, n in enumerate(n_clips_per_class):
        for _ in range(n):
            y += [k] * windows
            clip += [c] * windows
            c += 1
    n = len(y)
    return Dataset(rng.random((n, 4, 5), dtype=np.float32), np.array(y), np.array(clip),
                   [f"g{k}/c{i}" for i, k in enumerate(np.array(y)[::windows])],
                   ["g0", "g1", "g2"], P, [])


def test_stratified_split_by_clip():
    ds = _windowed()
    train, valid, test = stratified_split(ds, test_fraction=0.2, valid_fraction=0.2, seed=3)
    assert sorted(np.concatenate([train, valid, test]).tolist()) == list(range(len(ds.y)))
    parts = [set(ds.clip[i].tolist()) for i in (train, valid, test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    for idx in (valid, test):                                  # every class in every part
        assert sorted(set(ds.y[idx].tolist())) == [0, 1, 2]
    assert len(set(ds.clip[test].tolist())) == 3           # round(.2 * 6) = round(.2 * 5) = 1
    again = stratified_split(ds, 0.2, 0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, valid, test)))
    assert len(stratified_split(ds, 0.2, 0.0)[1]) == 0


def test_stratified_split_rejects_bad_fractions():
    ds = _windowed((2, 2, 2))
    with pytest.raises(DataError, match="leaves nothing to train"):
        stratified_split(ds, 0.6, 0.5)
    with pytest.raises(DataError, match="class 'g0' has 2 clips, too few"):
        stratified_split(ds, 0.3, 0.3)
    with pytest.raises(DataError, match=r"test_fraction=1\.5"):
        stratified_split(ds, 1.5)


def test_split_from_dir_errors(tmp_path):
    ds = _windowed((2, 2, 2), windows=1)
    d = tmp_path / "split"
    with pytest.raises(DataError, match="does not exist"):
        split_from_dir(ds, d)
    d.mkdir()
    (d / "train.txt").write_text("g0/c0\ng1/c2\ng2/c4.wav\n\n# comment\n")
    with pytest.raises(DataError, match="no test.txt"):
        split_from_dir(ds, d)
    (d / "test.txt").write_text("g0/c1\ng2/c5\nzz/absent\n")
    train, valid, test = s = split_from_dir(ds, d)                     # valid.txt optional
    assert train.tolist() == [0, 2, 4] and test.tolist() == [1, 5] and len(valid) == 0
    assert s.absent["test"] == ["zz/absent"] and s.unlisted == ["g1/c3"]
    (d / "valid.txt").write_text("g0/c0\n")
    with pytest.raises(DataError, match="g0/c0 is listed in both train.txt and valid.txt"):
        split_from_dir(ds, d)
    (d / "valid.txt").unlink()
    (d / "train.txt").write_text("blues/blues.00001\n")
    (d / "test.txt").write_text("blues/blues.00002\n")
    with pytest.raises(DataError, match="none of the 2 clip ids"):
        split_from_dir(ds, d)


def test_band_normalizer_fits_training_part_only():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(30, 8, 20)) * np.arange(1, 9)[None, :, None] + 5).astype(np.float32)
    x[:, 3] = 0.25                                                    # a constant band
    norm = BandNormalizer.fit(x[:20])
    z = norm.transform(x[:20])
    assert z.dtype == np.float32
    assert np.allclose(z.mean(axis=(0, 2)), 0, atol=1e-4)
    assert np.allclose(np.delete(z.std(axis=(0, 2)), 3), 1, atol=1e-3)
    back = BandNormalizer.from_arrays(norm.to_arrays())
    assert np.array_equal(back.transform(x[20:]), norm.transform(x[20:]))
    with pytest.raises(DataError, match="do not fit a band normalisation of 8 bands"):
        norm.transform(x[:, :4])
    with pytest.raises(DataError, match="lack"):
        BandNormalizer.from_arrays({"band_mean": np.zeros(8)})


# -- the synthetic default ----------------------------------------------------------------

def test_synthetic_is_seeded_and_shaped():
    a = synthetic_dataset(n_per_class=3, n_classes=3, seconds=1.0, seed=5)
    b = synthetic_dataset(n_per_class=3, n_classes=3, seconds=1.0, seed=5)
    c = synthetic_dataset(n_per_class=3, n_classes=3, seconds=1.0, seed=6)
    assert np.array_equal(a.x, b.x) and not np.array_equal(a.x, c.x)
    assert a.x.shape == (9, 128, 44) and a.x.dtype == np.float32
    assert a.class_names == ["chime", "drone", "pulse"]
    assert a.clip_ids[0] == "chime/chime.00000" and a.y.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    with pytest.raises(DataError, match="2 to 8 classes"):
        synthetic_dataset(n_classes=9)


def test_synthetic_is_fast_and_learnable_but_not_identical_clips():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    ds = synthetic_dataset(n_per_class=20, n_classes=4, seconds=3.0, seed=0)
    assert time.perf_counter() - start < 20                          # 80 clips; ~1 s idle
    train, _, test = stratified_split(ds, 0.3, seed=0)
    # level and variation of each band over time: timbre/pitch and rhythm
    stats = np.concatenate([ds.x.mean(axis=2), ds.x.std(axis=2)], axis=1)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    clf.fit(stats[train], ds.y[train])
    assert clf.score(stats[test], ds.y[test]) >= 0.85                # chance is 0.25
    within = [np.abs(ds.x[ds.y == k][0] - ds.x[ds.y == k][1]).mean() for k in range(4)]
    assert min(within) > 0.05                                         # clips really vary
