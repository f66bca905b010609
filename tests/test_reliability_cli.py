"""evaluate, features and the smaller commands: no tracebacks, no false successes, one
clear line."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from genrecnn.engine.registry import registry
from genrecnn.errors import DataError

from badinput import one_error_line, run_cli

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.usefixtures("own_cache")]


def test_numpy_warnings_stay_out_of_stderr(npy_data, tmp_path):
    res = subprocess.run([sys.executable, "-m", "genrecnn", "train", str(npy_data), "--optimizer",
                          "sgd", "--lr", "1e30", "--norm", "none", "--epochs", "2", "--out",
                          str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "diverged" in one_error_line(res.stderr)


# -- evaluate --split ----------------------------------------------------------------------------

def _split(tmp_path, train_ids, test_ids):
    d = tmp_path / "split"
    d.mkdir(exist_ok=True)
    (d / "train.txt").write_text("".join(i + "\n" for i in train_ids))
    (d / "test.txt").write_text("".join(i + "\n" for i in test_ids))
    return d


def test_evaluate_split_with_one_training_genre_is_refused(npy_data, tmp_path, capsys):
    split = _split(tmp_path, [f"high/high.{i:05d}" for i in range(4)],
                   ["high/high.00004", "low/low.00004"])
    code, _, err = run_cli(["evaluate", npy_data, "--split", split, "--epochs", "1", "--out",
                            tmp_path / "cm.png"], capsys)
    assert code == 2 and "are of 1 genre(s) (high)" in one_error_line(err)


def test_baseline_refuses_one_genre():
    from genrecnn.music.baseline import Baseline
    with pytest.raises(DataError, match="at least two genres"):
        Baseline().fit(np.zeros((3, 128, 40)), np.zeros(3, dtype=int), 2)


def test_evaluate_split_reports_absent_ids_and_gives_split_advice(npy_data, tmp_path, capsys):
    split = _split(tmp_path, [f"{g}/{g}.{i:05d}" for g in ("high", "low") for i in range(4)]
                   + ["high/gone.00001"], ["high/high.00004", "low/low.00005"])
    code, out, _ = run_cli(["evaluate", npy_data, "--split", split, "--epochs", "1",
                            "--no-baseline", "--out", tmp_path / "cm.png"], capsys)
    assert code == 0 and "train 8 clips (1 listed ids absent from the data)" in out
    (split / "test.txt").write_text("high/gone.00009\n")
    code, _, err = run_cli(["evaluate", npy_data, "--split", split, "--epochs", "1", "--out",
                            tmp_path / "cm.png"], capsys)
    line = one_error_line(err)
    assert code == 2 and "test.txt is in the dataset" in line and "--test-fraction" not in line


def test_a_split_list_that_is_a_fifo_is_refused_without_hanging(npy_data, tmp_path, capsys):
    split = _split(tmp_path, [], ["low/low.00000"])
    (split / "train.txt").unlink()
    os.mkfifo(split / "train.txt")
    code, _, err = run_cli(["train", npy_data, "--split", split, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "is a FIFO" in one_error_line(err)


# -- outputs and caches --------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["filters", "evaluate"])
def test_an_out_path_that_is_a_folder_is_one_line(command, trained, npy_data, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    argv = (["filters", trained / "model.safetensors", npy_data / "low" / "low.00000.npy"]
            if command == "filters" else
            ["evaluate", npy_data, "--epochs", "1", "--repeats", "1", "--test-fraction", "0.34",
             "--no-baseline"])
    code, _, err = run_cli(argv + ["--out", tmp_path / "taken"], capsys)
    assert code == 2 and "Is a directory" in one_error_line(err)


def test_features_refuses_a_cache_it_cannot_write(tmp_path, capsys):
    data = tmp_path / "data"
    for g in ("a", "b"):
        (data / g).mkdir(parents=True)
        sf.write(data / g / f"{g}.wav", np.sin(np.arange(22050) * 0.1 * (1 + (g == "b"))),
                 22050)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(["features", data, "--cache-dir", blocker / "cache", "-j", "1"],
                           capsys)
    assert code == 2 and "cannot write to the feature cache" in one_error_line(err)
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    code, _, err = run_cli(["features", data, "--cache-dir", ro, "-j", "1"], capsys)
    if os.geteuid() == 0:               # root writes through permissions
        assert code == 0 and any(ro.iterdir()), err
    else:
        assert code == 2 and "cannot write to the feature cache" in one_error_line(err)


# -- the smaller commands ------------------------------------------------------------------------

def test_empty_backend_is_refused(trained, npy_data, capsys):
    code, _, err = run_cli(["predict", trained / "model.safetensors", npy_data / "low" / "low.00000.npy",
                            "--backend", ""], capsys)
    assert code == 2 and "placement is empty" in one_error_line(err)


def test_conformance_with_no_applicable_check_fails(capsys):
    code, out, err = run_cli(["conformance", "--backend", "numpy", "--dtype", "int32", "--op",
                              "conv1d"], capsys)
    assert code == 2 and "no conformance check applies" in one_error_line(err)
    assert "0/0" not in out


def test_bench_names_its_own_option(capsys):
    reg = registry()
    off = [n for n in reg.names() if not reg.infos[n].available]
    if not off:
        pytest.skip("every backend is available here")
    code, _, err = run_cli(["bench", "--backends", off[0]], capsys)
    line = one_error_line(err)
    assert code == 2 and "--backends" in line and "--backend " not in line
