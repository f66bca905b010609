"""The bad-input corpus against every command that reads a file, and properties of the
clip reader: any bytes give features or one clear line, never a traceback or a hang."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from genrecnn.errors import DataError
from genrecnn.music.features import SUPPORTED_EXTENSIONS, load_features

from badinput import (audio_corpus, no_hang, one_error_line, run_cli, tone,
                      wav_bytes, write_npy_genres)

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.usefixtures("own_cache")]
# headerless .au is 8 kHz mu-law by the format's own rules: random bytes are a (noisy) clip,
# too short for the test model's predictions but drawn by filters
READABLE = {"random.au"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return audio_corpus(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def messy_data(corpus, tmp_path_factory):
    """A dataset whose genre folders hold good clips and the whole corpus."""
    root = write_npy_genres(tmp_path_factory.mktemp("messy"), n=4)
    for name, path in corpus.items():
        if name in READABLE:      # a readable clip of another kind: train refuses the mix
            continue
        target = root / "high" / name
        if path.is_symlink():
            target.symlink_to(path.readlink() if name != "loop.wav" else target)
        elif path.is_dir():
            target.mkdir()
        elif name == "fifo.wav":
            import os
            os.mkfifo(target)
        else:
            shutil.copy(path, target)
    return root


def test_predict_and_filters_refuse_every_bad_clip_with_one_line(corpus, audio_model, tmp_path,
                                                                 capsys):
    # a model recorded as trained on audio, so the clips are judged as audio, not refused
    # for their kind
    for name, path in corpus.items():
        for argv in (["predict", audio_model, path],
                     ["filters", audio_model, path, "--out", tmp_path / "f.png"]):
            code, out, err = run_cli(argv, capsys)
            if name in READABLE and argv[0] == "filters":   # any length can be drawn
                assert code == 0 and (tmp_path / "f.png").is_file(), (name, err)
                continue
            assert code == 2, (name, argv[0], out)
            line = one_error_line(err)
            assert name in line and "Error" not in line, (name, line)   # no class names
            # predict refuses a readable clip for its length (half a second), not as unreadable
            assert ("too short for this model" in line) == (name in READABLE), (name, line)


@pytest.mark.parametrize("command", [
    ["features", "-j", "2"], ["train", "--epochs", "1", "--test-fraction", "0.5"],
    ["evaluate", "--epochs", "1", "--repeats", "1", "--test-fraction", "0.5", "--no-baseline"]])
def test_folder_commands_skip_every_bad_clip_and_strict_stops(command, messy_data, corpus,
                                                              tmp_path, capsys):
    out_opt = [] if command[0] == "features" else [
        "--out", tmp_path / ("o" if command[0] == "train" else "cm.png")]
    code, out, err = run_cli([command[0], messy_data, *command[1:], *out_opt], capsys)
    assert code == 0, err
    listed = {Path(line.split(":")[0].strip()).name for line in out.splitlines()
              if line.startswith("  ") and "/high/" in line}
    expected = {n for n in corpus if Path(n).suffix.lower() in SUPPORTED_EXTENSIONS} - READABLE
    assert listed == expected, sorted(listed ^ expected)
    force = ["--force"] if command[0] == "train" else []
    code, _, err = run_cli([command[0], messy_data, *command[1:], "--strict", *force, *out_opt],
                           capsys)
    assert code == 2 and "(and " in one_error_line(err)


# -- properties of the clip reader -------------------------------------------------------------

PROPERTY = settings(max_examples=60, deadline=None)


def _features_or_refusal(path: Path) -> None:
    try:
        with no_hang(30):
            feat = load_features(path)
    except DataError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.startswith(str(path)) and ";" in msg, msg
        return
    assert feat.dtype == np.float32 and feat.shape[0] == 128 and np.isfinite(feat).all()


@PROPERTY
@given(blob=st.binary(max_size=4096), ext=st.sampled_from(SUPPORTED_EXTENSIONS))
@example(blob=b"PK\x03\x04", ext=".npy")          # looks like a zip archive to np.load
def test_any_bytes_give_features_or_one_line(blob, ext):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"clip{ext}"
        path.write_bytes(blob)
        _features_or_refusal(path)


@PROPERTY
@given(shape=st.lists(st.integers(0, 10 ** 12), min_size=0, max_size=3),
       descr=st.sampled_from(["<f4", "<f8", "<i2", "|u1", "<c8", "|b1", "<U3", "|O"]),
       tail=st.binary(max_size=512))
def test_any_npy_header_gives_features_or_one_line(shape, descr, tail):
    """A header may claim any shape: the reader must not try to allocate it."""
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": tuple(shape)})
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "clip.npy"
        path.write_bytes(buf.getvalue() + tail)
        _features_or_refusal(path)


GOOD_WAV = wav_bytes(tone())


@PROPERTY
@given(data=st.data())
def test_damaged_wav_files_give_features_or_one_line(data):
    blob = bytearray(GOOD_WAV)
    for _ in range(data.draw(st.integers(0, 12))):
        blob[data.draw(st.integers(0, 200))] = data.draw(st.integers(0, 255))  # header area
    blob = blob[:data.draw(st.integers(0, len(blob)))]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "clip.wav"
        path.write_bytes(bytes(blob))
        _features_or_refusal(path)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])   # capsys is read out
@given(blob=st.binary(min_size=1, max_size=2048), ext=st.sampled_from([".wav", ".mp3", ".npy"]))
def test_predict_on_any_bytes_is_a_result_or_one_line(blob, ext, trained, capsys):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"clip{ext}"
        path.write_bytes(blob)
        code, out, err = run_cli(["predict", trained / "model.safetensors", path], capsys)
        if code == 0:       # a prediction over the model's two classes
            assert out.startswith(f"{path}: ") and "high" in out and "low" in out, out
        else:
            assert code == 2 and str(path) in one_error_line(err), err
