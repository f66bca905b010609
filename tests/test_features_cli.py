"""`genrecnn features`: caches a dataset, reports speed and skipped files, clear errors."""
from __future__ import annotations


import numpy as np
import pytest
import soundfile as sf

from genrecnn.music.synthetic import synth_clip
from badinput import run_cli


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    for g, name in (("rock", "pulse"), ("ambient", "drone")):
        (root / g).mkdir(parents=True)
        for i in range(2):
            y = synth_clip(name, 1.0, 22050, np.random.default_rng(i))
            sf.write(root / g / f"{g}.{i:05d}.wav", y, 22050)
    (root / "rock" / "broken.wav").write_bytes(b"not audio at all")
    return root


def test_features_caches_and_lists_skipped(data, tmp_path, capsys):
    cache = tmp_path / "cache"
    code, out, err = run_cli(["features", str(data), "--cache-dir", str(cache), "-j", "2"], capsys)
    assert code == 0, err
    assert "4 clips of 2 genres (ambient, rock) -> 128 x 44 features" in out
    assert "clips/s" in out and "0 hits, 4 computed" in out
    assert "skipped 1 file:" in out and "broken.wav: is corrupt or not decodable audio" in out
    assert "features" in err                                     # the tqdm bar, on stderr
    assert len(list(cache.rglob("*.npy"))) == 4
    code, out, _ = run_cli(["features", str(data), "--cache-dir", str(cache), "-q"], capsys)
    assert code == 0 and "4 hits, 0 computed" in out


def test_features_json_and_genres(data, tmp_path, capsys, strict_json):
    code, out, _ = run_cli(["features", str(data), "--cache-dir", str(tmp_path / "c"),
                            "--genres", "rock,ambient", "--json", "-j", "1"], capsys)
    assert code == 0
    summary = strict_json(out)
    assert summary["clips"] == 4 and summary["genres"] == ["ambient", "rock"]
    assert summary["cache_misses"] == 4 and summary["clips_per_s"] > 0
    assert [s["path"].endswith("broken.wav") for s in summary["skipped"]] == [True]


@pytest.mark.parametrize("args, message", [
    (["--strict"], "broken.wav: is corrupt or not decodable audio"),
    (["--genres", "rock,jazz"], "unknown genre jazz in"),
    (["--genres", "rock"], "1 genre folder (rock) selected; a classifier needs at least two"),
    (["--jobs", "0"], "--jobs 0: give at least 1 worker process"),
])
def test_features_errors_are_one_line(data, tmp_path, capsys, args, message):
    code, out, err = run_cli(["features", str(data), "--cache-dir", str(tmp_path / "c"),
                              "-q", *args], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


def test_features_missing_folder(tmp_path, capsys):
    code, _, err = run_cli(["features", str(tmp_path / "nope"), "--cache-dir",
                            str(tmp_path / "c")], capsys)
    assert code == 2 and "does not exist" in err
