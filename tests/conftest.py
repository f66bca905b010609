"""Fixtures shared by the test modules: a tiny separable dataset of .npy spectrograms, a
model trained on it, a feature cache of the test's own, and a strict JSON reader.

The CLI runner (:func:`badinput.run_cli`) and the builders of damaged inputs live in
``badinput.py``; these fixtures use them.
"""
from __future__ import annotations

import json

import pytest

pytest.register_assert_rewrite("badinput")   # its checks explain their failures
from badinput import edit_model, write_npy_genres  # noqa: E402
from genrecnn.cli.main import main  # noqa: E402


@pytest.fixture(scope="session")
def npy_data(tmp_path_factory):
    """Two separable genres, ``high`` and ``low``, of 6 clips of 128 x 40 each."""
    return write_npy_genres(tmp_path_factory.mktemp("npydata"))


@pytest.fixture(scope="session")
def trained(npy_data, tmp_path_factory):
    """OUT folder of a 2-epoch run on ``npy_data`` (input 128 x 40, no windows). Shared by
    the session: tests copy what they change."""
    out = tmp_path_factory.mktemp("run") / "out"
    assert main(["train", str(npy_data), "--recipe", "cnn2d", "--epochs", "2", "--out", str(out),
                 "--test-fraction", "0.34", "--json"]) == 0
    return out


@pytest.fixture(scope="session")
def audio_model(trained, tmp_path_factory):
    """``trained``'s model recorded as trained on audio, for predicting audio files with it
    (a model refuses inputs of another kind than it was trained on)."""
    return edit_model(trained / "model.safetensors",
                      tmp_path_factory.mktemp("audio") / "model.safetensors",
                      edit=lambda h: dict(h, meta=dict(h["meta"], input_kind="audio")))


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A feature cache of the test's own (not the user's ~/.cache)."""
    monkeypatch.setenv("GENRECNN_CACHE", str(tmp_path / "cache"))


def _not_json(constant: str):
    raise ValueError(f"not strict JSON: {constant} is no JSON value")


@pytest.fixture
def strict_json():
    """``strict_json(text)``: the parsed value, or ValueError on NaN or Infinity (which
    Python writes by default but strict readers such as ``jq`` refuse)."""
    return lambda text: json.loads(text, parse_constant=_not_json)
