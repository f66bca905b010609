"""Predictions over a whole song (issue 23): per-window probabilities in --json, their
mean as the song's answer, the --timeline figure, and one CSV row per file of a folder."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from genrecnn.music.features import FeatureParams
from genrecnn.run.model_io import MODEL_FILE

from badinput import one_error_line, run_cli, write_npy_clip

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.usefixtures("own_cache")]
SONG_FRAMES = 200


@pytest.fixture
def song(tmp_path):
    """A 'song' of 200 frames: low for its first half, high for its second."""
    rng = np.random.default_rng(5)
    write_npy_clip(tmp_path / "a.npy", False, rng, frames=SONG_FRAMES // 2)
    write_npy_clip(tmp_path / "b.npy", True, rng, frames=SONG_FRAMES // 2)
    x = np.concatenate([np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")], axis=1)
    np.save(tmp_path / "song.npy", x)
    return tmp_path / "song.npy"


def test_json_carries_each_window_and_their_mean(trained, song, capsys, strict_json):
    code, out, _ = run_cli(["predict", trained / MODEL_FILE, song, "--json"], capsys)
    assert code == 0
    res = strict_json(out)[0]
    rows = res["timeline"]
    seconds = FeatureParams().hop_length / FeatureParams().sr
    assert len(rows) == res["windows"] == 9               # 40-frame windows, 20 apart
    assert [r["start"] for r in rows] == [round(20 * i * seconds, 3) for i in range(9)]
    assert rows[-1]["end"] == round(SONG_FRAMES * seconds, 3)
    mean = {g: np.mean([r["probabilities"][g] for r in rows]) for g in ("high", "low")}
    assert all(abs(mean[g] - res["probabilities"][g]) < 1e-6 for g in mean)
    first, last = rows[0]["probabilities"], rows[-1]["probabilities"]
    assert first["low"] > first["high"] and last["high"] > last["low"]   # the song changes


def test_timeline_figure_is_written(trained, song, tmp_path, capsys):
    png = tmp_path / "timeline.png"
    code, out, err = run_cli(["predict", trained / MODEL_FILE, song, "--timeline", png],
                             capsys)
    assert code == 0 and f"wrote {png}" in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_timeline_takes_one_song(trained, song, npy_data, tmp_path, capsys):
    code, _, err = run_cli(["predict", trained / MODEL_FILE, song, npy_data / "low" /
                            "low.00000.npy", "--timeline", tmp_path / "t.png"], capsys)
    assert code == 2 and "one FILE" in one_error_line(err)
    assert not (tmp_path / "t.png").exists()


def test_folder_gives_one_csv_row_per_file(trained, npy_data, tmp_path, capsys):
    table = tmp_path / "genres.csv"
    code, out, _ = run_cli(["predict", trained / MODEL_FILE, npy_data, "--csv", table],
                           capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert len(rows) == 12 and list(rows[0]) == ["file", "genre", "high", "low", "windows"]
    assert all(abs(float(r["high"]) + float(r["low"]) - 1) < 1e-5 for r in rows)
    assert sum(r["genre"] == r["file"].split("/")[-2] for r in rows) >= 9


def test_empty_folder_is_one_clear_line(trained, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["predict", trained / MODEL_FILE, tmp_path / "empty"], capsys)
    assert code == 2 and "holds no clips" in one_error_line(err)
