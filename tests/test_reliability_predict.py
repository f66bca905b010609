"""predict: no silent wrong answers on short, padded or band-limited clips, no NaN
answers, no hangs, one clear line."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from genrecnn.cli.main import main

from badinput import (edit_model, one_error_line, run_cli, tone,
                      write_npy_clip)

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.usefixtures("own_cache")]


def _train(data, out, *options):
    assert main(["train", str(data), "--epochs", "1", "--test-fraction", "0.34", "--out",
                 str(out), "--json", *options]) == 0
    return out / "model.safetensors"


@pytest.fixture(scope="module")
def windowed(npy_data, tmp_path_factory):
    return _train(npy_data, tmp_path_factory.mktemp("win") / "out", "--windows", "20")


@pytest.fixture(scope="module")
def framed(npy_data, tmp_path_factory):
    """Trained with --frames: clips down to half of it were padded in training."""
    return _train(npy_data, tmp_path_factory.mktemp("framed") / "out", "--frames", "40")


def _clip(tmp_path, frames: int, name="c.npy"):
    write_npy_clip(tmp_path / name, True, np.random.default_rng(frames), frames=frames)
    return tmp_path / name


def test_a_clip_shorter_than_any_training_clip_is_refused(trained, tmp_path, capsys):
    """Trained without --frames, the input is the shortest clip: nothing was padded."""
    code, _, err = run_cli(["predict", trained / "model.safetensors", _clip(tmp_path, 39)], capsys)
    line = one_error_line(err)
    assert code == 2 and "too short for this model" in line and "39 frames" in line
    assert "at least 0.9 s (40 frames)" in line and "none padded" in line
    assert run_cli(["predict", trained / "model.safetensors", _clip(tmp_path, 40)], capsys)[0] == 0


def test_a_clip_shorter_than_half_a_framed_input_is_refused(framed, tmp_path, capsys):
    code, _, err = run_cli(["predict", framed, _clip(tmp_path, 19)], capsys)
    line = one_error_line(err)
    assert code == 2 and "at least 0.5 s (20 frames)" in line and "half its input" in line


def test_a_padded_clip_says_so(framed, tmp_path, capsys, strict_json):
    code, out, _ = run_cli(["predict", framed, _clip(tmp_path, 30)], capsys)
    assert code == 0 and "note: the 0.7 s clip was padded with 0.2 s of silence" in out
    code, out, _ = run_cli(["predict", framed, _clip(tmp_path, 30), "--json"], capsys)
    (res,) = strict_json(out)
    assert res["padded_frames"] == 10 and "padded" in res["notes"][0]
    code, out, _ = run_cli(["predict", framed, _clip(tmp_path, 40)], capsys)
    assert code == 0 and "note" not in out


def test_a_windowed_model_needs_one_whole_window(windowed, tmp_path, capsys):
    code, _, err = run_cli(["predict", windowed, _clip(tmp_path, 19)], capsys)
    assert code == 2 and "trained on whole windows" in one_error_line(err)
    code, out, _ = run_cli(["predict", windowed, _clip(tmp_path, 20)], capsys)
    assert code == 0 and "note" not in out


def test_non_finite_probabilities_are_an_error(trained, tmp_path, capsys):
    model = edit_model(trained / "model.safetensors", tmp_path / "big.safetensors",
                       arrays_edit=lambda a: a.update({k: v * np.float32(1e30) for k, v in
                                                       a.items() if k.startswith("param/")}))
    code, out, err = run_cli(["predict", model, _clip(tmp_path, 40)], capsys)
    assert code == 2 and "non-finite probabilities" in one_error_line(err) and "nan" not in out


@pytest.mark.parametrize("rate,noted", [(8000, True), (22050, False)])
def test_a_band_limited_recording_gets_a_note(rate, noted, audio_model, tmp_path, capsys):
    sf.write(tmp_path / "a.wav", tone(2.0, rate), rate)
    code, out, _ = run_cli(["predict", audio_model, tmp_path / "a.wav"], capsys)
    assert code == 0
    assert (f"sampled at {rate} Hz, so it holds nothing above {rate // 2} Hz" in out) == noted


def test_a_fifo_is_refused_without_hanging(audio_model, tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.wav")
    code, _, err = run_cli(["predict", audio_model, tmp_path / "pipe.wav"], capsys)
    assert code == 2 and "FIFO (named pipe), not a regular file" in one_error_line(err)


def test_one_bad_file_is_one_line(audio_model, tmp_path, capsys):
    (tmp_path / "e.wav").write_bytes(b"")
    code, _, err = run_cli(["predict", audio_model, tmp_path / "e.wav"], capsys)
    assert code == 2 and "empty (0 bytes)" in one_error_line(err)


def test_a_clip_whose_name_is_not_utf8_is_read(audio_model, tmp_path, capsys):
    name = os.fsdecode(b"\xfe\xfd.wav")
    sf.write(tmp_path / "ok.wav", tone(), 22050)
    os.rename(tmp_path / "ok.wav", tmp_path / name)
    code, out, _ = run_cli(["predict", audio_model, tmp_path / name], capsys)
    assert code == 0 and (": high" in out or ": low" in out)


def test_decoder_chatter_and_jargon_stay_out_of_stderr(audio_model, tmp_path):
    """libmpg123 writes to fd 2 itself; audioread's NoBackendError has no words (subprocess:
    only a real process shows what reaches the terminal)."""
    rng = np.random.default_rng(5)
    (tmp_path / "a.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + rng.bytes(3000))
    (tmp_path / "b.m4a").write_bytes(rng.bytes(3000))
    res = subprocess.run([sys.executable, "-m", "genrecnn", "predict", str(audio_model),
                          str(tmp_path / "a.mp3"), str(tmp_path / "b.m4a")],
                         capture_output=True, text=True, timeout=120)
    lines = res.stderr.splitlines()
    assert res.returncode == 2 and len(lines) == 3 and all(ln.startswith("error: ") for ln in lines)
    assert all("corrupt or not decodable" in ln for ln in lines[:2]), lines
    assert "NoBackendError" not in res.stderr
