"""Model files: every header field checked, non-finite weights refused, and any byte
string read as a model gives a usable model or one clear line."""
from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from genrecnn.errors import ModelFileError
from genrecnn.run.inference import load_inference_model
from genrecnn.run.model_io import (CHECKSUM, MODEL_FILE, load_model, read_model_file,
                                   tensors_digest)
from genrecnn.run.onnx_model import load_predictor

from badinput import (_set, edit_model, flipped_copy, model_corpus, one_error_line,
                      read_archive, run_cli, write_archive)

pytestmark = pytest.mark.filterwarnings("ignore")


# damaged models whose first-layer outputs `filters` can still draw
DRAWABLE = {"huge-weights"}
# fields `train --resume` does not read when the run already has all its epochs
FINISHED_RUN_IGNORES = {"class-names-null", "class-names-short", "class-names-numbers",
                        "norm-other", "windows-string", "huge-weights"}
FINISHED_RUN_IGNORES |= {f"st-{name}" for name in FINISHED_RUN_IGNORES}   # safetensors too


@pytest.fixture(scope="module")
def corpus(trained, tmp_path_factory):
    return model_corpus(trained / MODEL_FILE, tmp_path_factory.mktemp("models"))


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
def test_named_damage_is_one_clear_line(name, words, corpus, clip, capsys):
    code, _, err = run_cli(["predict", corpus[name], clip], capsys)
    assert code == 2 and words in one_error_line(err)


def test_every_damaged_model_is_refused_by_predict(corpus, clip, tmp_path, capsys):
    for name, path in corpus.items():
        code, out, err = run_cli(["predict", path, clip], capsys)
        assert code == 2, (name, out, err)
        assert "model" in one_error_line(err), (name, err)
        png = tmp_path / f"{name}.png"
        code, _, err = run_cli(["filters", path, clip, "--out", png], capsys)
        if name in DRAWABLE:    # huge but finite weights still have outputs to draw
            assert code == 0 and png.stat().st_size > 0, (name, err)
        else:
            assert code == 2 and "model" in one_error_line(err), (name, err)
            assert not png.exists(), name


def test_every_damaged_model_is_refused_or_left_alone_by_train(corpus, capsys, tmp_path):
    """train --resume reads the model first: one line, or (for damage in fields a finished
    run never reads again) "nothing left to train" with the file left as it was."""
    for name, path in corpus.items():
        out = tmp_path / name
        out.mkdir()
        if path.is_file():
            shutil.copy(path, out / _run_file(path))
        code, _, err = run_cli(["train", "--resume", "--out", out], capsys)
        if name in FINISHED_RUN_IGNORES:
            assert code == 0, (name, err)
            assert (out / _run_file(path)).read_bytes() == path.read_bytes(), name
        else:
            assert code == 2 and one_error_line(err), (name, err)


def _run_file(path: Path) -> str:
    """The name a run folder gives a model file of ``path``'s format."""
    return MODEL_FILE if path.suffix == ".safetensors" else "model.npz"


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
    edit_model(trained / MODEL_FILE, tmp_path / "model.npz", edit)      # an old run
    code, _, err = run_cli(["train", "--resume", "--out", tmp_path], capsys)
    assert code == 2 and words in one_error_line(err)


def test_infinite_optimiser_state_is_refused(trained, tmp_path):
    def inf_state(arrays):
        key = next(k for k in arrays if k.startswith("extra/optim/"))
        arrays[key] = np.full_like(arrays[key], np.inf)
    edit_model(trained / MODEL_FILE, tmp_path / "m.safetensors", arrays_edit=inf_state)
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        read_model_file(tmp_path / "m.safetensors")


def test_a_changed_byte_inside_a_weight_fails_the_checksum_in_one_line(trained, clip,
                                                                        tmp_path, capsys):
    """safetensors keeps no checksum: without the header's, the byte would load as another
    finite weight and predict would answer with it."""
    header, arrays = read_archive(trained / MODEL_FILE)
    assert header[CHECKSUM] == tensors_digest(arrays)
    blob = bytearray((trained / MODEL_FILE).read_bytes())
    blob[-2] ^= 0x01                                   # inside the last tensor's data
    bad = tmp_path / MODEL_FILE
    bad.write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="do not match the checksum"):
        read_model_file(bad)
    code, out, err = run_cli(["predict", str(bad), str(clip)], capsys)
    assert code == 2 and not out and "checksum" in one_error_line(err)


def test_a_model_file_from_before_the_checksum_still_loads(trained, tmp_path):
    header, arrays = read_archive(trained / MODEL_FILE)
    del header[CHECKSUM]
    write_archive(tmp_path / "old.safetensors", header, arrays)
    net, meta, _ = load_model(tmp_path / "old.safetensors")
    assert meta["class_names"] == ["high", "low"]


def test_good_model_still_loads_and_round_trips(trained, tmp_path):
    header, arrays = read_archive(trained / MODEL_FILE)
    write_archive(tmp_path / "same.npz", header, arrays)
    net, meta, _ = load_model(tmp_path / "same.npz")
    assert meta["class_names"] == ["high", "low"] and net.input_shape == (128, 40)


def test_saved_header_is_strict_json(trained, tmp_path, strict_json):
    """NaN in a history row is written as null, so other readers can parse the header."""
    from safetensors import safe_open
    from genrecnn.run.model_io import save_model
    net, meta, extra = load_model(trained / MODEL_FILE)
    meta["history"][-1]["valid_loss"] = float("nan")
    save_model(tmp_path / "m.safetensors", net, meta, extra)
    with safe_open(tmp_path / "m.safetensors", framework="np") as fh:
        stored = strict_json(fh.metadata()["meta"])
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


def _loads_or_refuses(path: Path, good: Path) -> None:
    """Refused with one line, or loaded as a usable model: as many string class names as
    outputs, the good model's weights (damage never reaches the arrays: a changed byte
    inside a tensor fails the model file's checksum), and finite probabilities that sum
    to one."""
    try:
        model = load_inference_model(path, "numpy", echo=lambda s: None)
    except ModelFileError as exc:
        assert "\n" not in str(exc) and str(exc).strip(), repr(exc)
        return
    net = model.net
    assert len(model.names) == net.n_classes and all(isinstance(n, str) for n in model.names)
    assert model.params.n_mels == net.input_shape[0]
    reference = load_model(good)[0].host_params()
    params = net.host_params()
    assert params.keys() == reference.keys()
    assert all(np.array_equal(params[k], reference[k]) for k in params)
    probs = net.predict_proba(np.zeros((1, *net.input_shape), net.dtype))
    assert probs.shape == (1, net.n_classes) and np.isfinite(probs).all()
    assert np.isclose(probs.sum(), 1.0, atol=1e-4)


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
    arrays = read_archive(trained / MODEL_FILE)[1]
    with tempfile.TemporaryDirectory() as d:
        _loads_or_refuses(write_archive(Path(d) / "m.npz", header, arrays),
                          trained / MODEL_FILE)


@settings(PROPERTY, max_examples=100)
@given(field=st.sampled_from(FIELDS), value=JSON, suffix=st.sampled_from(SUFFIXES))
def test_any_field_value_is_refused_or_loaded(field, value, suffix, trained):
    with tempfile.TemporaryDirectory() as d:
        _loads_or_refuses(edit_model(trained / MODEL_FILE, Path(d) / f"m{suffix}",
                                     _set(*field, value=value)), trained / MODEL_FILE)


@PROPERTY
@given(data=st.data(), suffix=st.sampled_from(SUFFIXES))
def test_flipped_bytes_are_refused_or_loaded(data, suffix, trained):
    with tempfile.TemporaryDirectory() as d:
        good = edit_model(trained / MODEL_FILE, Path(d) / f"good{suffix}")
        _loads_or_refuses(flipped_copy(data, good, Path(d) / f"m{suffix}"), trained / MODEL_FILE)


@PROPERTY
@given(metadata=st.dictionaries(st.sampled_from(["format", "version", "layers", "meta",
                                                 "input_shape", "n_classes", "dtype"]),
                                st.text(max_size=40), max_size=7))
def test_any_safetensors_metadata_strings_are_refused_or_loaded(metadata, trained):
    """Metadata strings that need not be JSON at all, over the good model's tensors."""
    import safetensors.numpy
    arrays = read_archive(trained / MODEL_FILE)[1]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.safetensors"
        path.write_bytes(safetensors.numpy.save(arrays, metadata=metadata))
        _loads_or_refuses(path, trained / MODEL_FILE)
