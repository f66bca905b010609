"""Model files: every header field checked, non-finite weights refused, and any byte
string read as a model gives a model or one clear line (issue 11)."""
from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from genrecnn.errors import ModelFileError
from genrecnn.run.inference import load_inference_model
from genrecnn.run.model_io import load_model, read_model_file
from genrecnn.run.onnx_model import load_predictor

pytest.register_assert_rewrite("badinput")   # its checks explain their failures
from badinput import (_set, edit_model, flipped_copy, model_corpus,  # noqa: E402
                      one_error_line, read_archive, run_cli, write_archive)

pytest_plugins = ["badinput"]           # fixtures npy_data, trained
pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def corpus(trained, tmp_path_factory):
    return model_corpus(trained / "model.safetensors", tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def clip(npy_data):
    return npy_data / "low" / "low.00000.npy"


@pytest.mark.parametrize("name,words", [
    ("header-list", "is a JSON list, not an object"),
    ("version-string", "'version' is \"2\""),
    ("layers-garbage", "'layers' is \"garbage\""),
    ("meta-null", "'meta' is null"),
    ("layer-huge", "larger than any stored weight array"),
    ("nan-weights", "NaN or infinite"),
    ("header-deep", "not valid JSON"),
    ("npy-not-npz", "a single array"),
    ("fifo", "FIFO"),
])
def test_issue_cases_are_one_clear_line(name, words, corpus, clip, capsys):
    code, _, err = run_cli(["predict", corpus[name], clip], capsys)
    assert code == 2 and words in one_error_line(err)


def test_every_damaged_model_is_refused_by_predict(corpus, clip, tmp_path, capsys):
    for name, path in corpus.items():
        code, out, err = run_cli(["predict", path, clip], capsys)
        assert code == 2, (name, out, err)
        assert "model" in one_error_line(err), (name, err)
        # filters draws huge (finite) weights' outputs: a result or one line
        code, _, err = run_cli(["filters", path, clip, "--out", tmp_path / "f.png"], capsys)
        assert code == 2 and one_error_line(err) or name == "huge-weights", (name, err)


def test_every_damaged_model_is_refused_or_resumed_by_train(corpus, capsys, tmp_path):
    """train --resume reads the model first: a result or one line, never a traceback."""
    for name, path in corpus.items():
        out = tmp_path / name
        out.mkdir()
        if path.is_file():
            shutil.copy(path, out / ("model.safetensors" if path.suffix == ".safetensors"
                                     else "model.npz"))
        code, _, err = run_cli(["train", "--resume", "--out", out], capsys)
        if code:
            one_error_line(err)


def test_meta_null_is_refused_on_resume(corpus, tmp_path, capsys):
    (tmp_path / "model.npz").write_bytes(corpus["meta-null"].read_bytes())
    code, _, err = run_cli(["train", "--resume", "--out", tmp_path], capsys)
    assert code == 2 and "'meta' is null" in one_error_line(err)


@pytest.mark.parametrize("edit,words", [
    (lambda h: h["meta"]["settings"].update(epochs="3") or h, "epochs='3'"),
    (lambda h: h["meta"].update(epoch=-1) or h, "damaged training state (epoch)"),
    (lambda h: h["meta"]["run"].update(genres=5) or h, "damaged run settings (genres)"),
    (lambda h: h["meta"]["run"].update(vote="loudest") or h, "damaged run settings (vote)"),
    (lambda h: h["meta"].update(optimizer={"state": {"lr": "fast"}}) or h, "training state"),
])
def test_damaged_training_state_is_refused_on_resume(edit, words, trained, tmp_path, capsys):
    edit_model(trained / "model.safetensors", tmp_path / "model.npz", edit)
    code, _, err = run_cli(["train", "--resume", "--out", tmp_path], capsys)
    assert code == 2 and words in one_error_line(err)


def test_infinite_optimiser_state_is_refused(trained, tmp_path):
    def inf_state(arrays):
        key = next(k for k in arrays if k.startswith("extra/optim/"))
        arrays[key] = np.full_like(arrays[key], np.inf)
    edit_model(trained / "model.safetensors", tmp_path / "m.npz", arrays_edit=inf_state)
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        read_model_file(tmp_path / "m.npz")


def test_good_model_still_loads_and_round_trips(trained, tmp_path):
    header, arrays = read_archive(trained / "model.safetensors")
    write_archive(tmp_path / "same.npz", header, arrays)
    net, meta, _ = load_model(tmp_path / "same.npz")
    assert meta["class_names"] == ["high", "low"] and net.input_shape == (128, 40)


def test_saved_header_is_strict_json(trained, tmp_path):
    """NaN in a history row is written as null, so other readers can parse the header."""
    from safetensors import safe_open
    from genrecnn.run.model_io import save_model
    net, meta, extra = load_model(trained / "model.safetensors")
    meta["history"][-1]["valid_loss"] = float("nan")
    save_model(tmp_path / "m.safetensors", net, meta, extra)
    with safe_open(tmp_path / "m.safetensors", framework="np") as fh:
        text = fh.metadata()["meta"]
    stored = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert stored["history"][-1]["valid_loss"] is None


# -- properties: any bytes, any header -------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
FIELDS = [("format",), ("version",), ("layers",), ("input_shape",), ("dtype",), ("n_classes",),
          ("placement",), ("meta",), ("layers", 0), ("layers", 0, "filters"),
          ("layers", 0, "width"), ("layers", -1, "units"), ("meta", "class_names"),
          ("meta", "feature_params"), ("meta", "feature_params", "sr"),
          ("meta", "feature_params", "hop_length"), ("meta", "norm"), ("meta", "windows")]
SUFFIXES = [".safetensors", ".npz"]     # the model file and the old format
# and an ONNX export, where onnxruntime is installed
READERS = SUFFIXES + [".onnx"] * (importlib.util.find_spec("onnxruntime") is not None)
PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _loads_or_refuses(path: Path) -> None:
    try:
        load_inference_model(path, "numpy", echo=lambda s: None)
    except ModelFileError as exc:
        assert "\n" not in str(exc)


@PROPERTY
@given(blob=st.binary(max_size=3000), suffix=st.sampled_from(READERS))
def test_any_bytes_are_refused_with_one_line(blob, suffix):
    """Whatever the name says (a model file, the old format, an ONNX export)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"m{suffix}"
        path.write_bytes(blob)
        with pytest.raises(ModelFileError) as err:
            load_predictor(path, "numpy", echo=lambda s: None)
        assert "\n" not in str(err.value)


@PROPERTY
@given(header=JSON)
def test_any_json_header_is_refused_or_loaded(header, trained):
    arrays = read_archive(trained / "model.safetensors")[1]
    with tempfile.TemporaryDirectory() as d:
        _loads_or_refuses(write_archive(Path(d) / "m.npz", header, arrays))


@settings(PROPERTY, max_examples=100)
@given(field=st.sampled_from(FIELDS), value=JSON, suffix=st.sampled_from(SUFFIXES))
def test_any_field_value_is_refused_or_loaded(field, value, suffix, trained):
    with tempfile.TemporaryDirectory() as d:
        _loads_or_refuses(edit_model(trained / "model.safetensors", Path(d) / f"m{suffix}",
                                     _set(*field, value=value)))


@PROPERTY
@given(data=st.data(), suffix=st.sampled_from(SUFFIXES))
def test_flipped_bytes_are_refused_or_loaded(data, suffix, trained):
    with tempfile.TemporaryDirectory() as d:
        good = edit_model(trained / "model.safetensors", Path(d) / f"good{suffix}")
        _loads_or_refuses(flipped_copy(data, good, Path(d) / f"m{suffix}"))


@PROPERTY
@given(metadata=st.dictionaries(st.sampled_from(["format", "version", "layers", "meta",
                                                 "input_shape", "n_classes", "dtype"]),
                                st.text(max_size=40), max_size=7))
def test_any_safetensors_metadata_strings_are_refused_or_loaded(metadata, trained):
    """Metadata strings that need not be JSON at all, over the good model's tensors."""
    import safetensors.numpy
    arrays = read_archive(trained / "model.safetensors")[1]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.safetensors"
        path.write_bytes(safetensors.numpy.save(arrays, metadata=metadata))
        _loads_or_refuses(path)
