"""Model files in safetensors (issue 23): every array a tensor, every header field a JSON
string in ``__metadata__``; old .npz models still predict and resume, with a note
suggesting `genrecnn convert`, which rewrites them."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from safetensors import safe_open

from genrecnn.run.model_io import (LEGACY_MODEL_FILE, MODEL_FILE, read_model_file,
                                   stored_model)

from badinput import edit_model, one_error_line, run_cli

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.usefixtures("own_cache")]


@pytest.fixture(scope="module")
def legacy(trained, tmp_path_factory):
    """The trained run's model as the old .npz archive, alone in a run folder."""
    out = tmp_path_factory.mktemp("legacy")
    edit_model(trained / MODEL_FILE, out / LEGACY_MODEL_FILE)
    return out


def test_train_writes_safetensors_with_json_metadata(trained, strict_json):
    with safe_open(trained / MODEL_FILE, framework="np") as fh:
        meta, keys = fh.metadata(), set(fh.keys())
    header = {k: strict_json(v) for k, v in meta.items()}     # each field strict JSON
    assert header["format"] == "genrecnn-model"
    assert header["meta"]["class_names"] == ["high", "low"]
    assert "sr" in header["meta"]["feature_params"] and "settings" in header["meta"]
    assert any(k.startswith("param/") and k.endswith("running_mean") for k in keys)
    assert {"extra/norm/band_mean", "extra/norm/band_std"} <= keys
    assert any(k.startswith("extra/optim/") for k in keys)        # what --resume needs
    assert not (trained / LEGACY_MODEL_FILE).exists()


def test_safetensors_and_npz_hold_the_same_model(trained, legacy):
    h1, p1, e1 = read_model_file(trained / MODEL_FILE)
    h2, p2, e2 = read_model_file(legacy / LEGACY_MODEL_FILE)
    assert h1 == h2 and p1.keys() == p2.keys() and e1.keys() == e2.keys()
    assert all(np.array_equal(p1[k], p2[k]) for k in p1)


def test_old_model_predicts_with_a_note(trained, legacy, npy_data, capsys, strict_json):
    clip = npy_data / "low" / "low.00000.npy"
    code, new, _ = run_cli(["predict", trained / MODEL_FILE, clip, "--json"], capsys)
    assert code == 0
    code, old, err = run_cli(["predict", legacy / LEGACY_MODEL_FILE, clip, "--json"], capsys)
    assert code == 0 and strict_json(old) == strict_json(new)
    assert f"genrecnn convert {legacy / LEGACY_MODEL_FILE}" in err
    code, _, err = run_cli(["predict", trained / MODEL_FILE, clip], capsys)
    assert "convert" not in err


def test_old_run_resumes_and_then_writes_safetensors(legacy, npy_data, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(legacy, out)
    assert stored_model(out) == out / LEGACY_MODEL_FILE
    code, said, err = run_cli(["train", npy_data, "--resume", "--epochs", "3", "--out", out],
                              capsys)
    assert code == 0 and "genrecnn convert" in said + err
    assert stored_model(out) == out / MODEL_FILE
    assert read_model_file(out / MODEL_FILE)[0]["meta"]["epoch"] == 3


def test_convert_rewrites_an_old_model(legacy, tmp_path, capsys):
    src = tmp_path / "old.npz"
    shutil.copy(legacy / LEGACY_MODEL_FILE, src)
    code, out, _ = run_cli(["convert", src], capsys)
    assert code == 0 and str(tmp_path / "old.safetensors") in out
    h1, p1, _ = read_model_file(src)
    h2, p2, _ = read_model_file(tmp_path / "old.safetensors")
    assert h1 == h2 and all(np.array_equal(p1[k], p2[k]) for k in p1)
    code, _, err = run_cli(["convert", src], capsys)               # refuses to overwrite
    assert code == 2 and "--force" in one_error_line(err)
    assert run_cli(["convert", src, "--force"], capsys)[0] == 0


@pytest.mark.parametrize("name,words", [("good.safetensors", "already a safetensors model"),
                                        ("missing.npz", "does not exist"),
                                        ("text.npz", "not a readable genrecnn model")])
def test_convert_refuses_what_it_cannot_convert(name, words, trained, tmp_path, capsys):
    shutil.copy(trained / MODEL_FILE, tmp_path / "good.safetensors")
    (tmp_path / "text.npz").write_text("hello")
    code, _, err = run_cli(["convert", tmp_path / name, tmp_path / "new.safetensors"], capsys)
    assert code == 2 and words in one_error_line(err)
    assert not (tmp_path / "new.safetensors").exists()
