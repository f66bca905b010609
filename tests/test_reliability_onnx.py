"""Damaged bytes or any metadata in an ``.onnx`` model give a model or one clear line
(issue 23): the exported graph's reader trusts nothing. (Any bytes at all: the
property tests of test_reliability_model.py.)"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

pytest.importorskip("onnx", reason="the [onnx] extra (onnx) is not installed")
pytest.importorskip("onnxruntime", reason="the [onnx] extra (onnxruntime) is not installed")

from genrecnn.errors import ModelFileError  # noqa: E402
from genrecnn.run.onnx_export import export_onnx  # noqa: E402
from genrecnn.run.onnx_model import load_onnx_model  # noqa: E402
from badinput import flipped_copy  # noqa: E402
from onnx_models import random_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")
PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYS = ["format", "version", "class_names", "feature_params", "input_shape", "windowed",
        "padded"]
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    return export_onnx(random_model("small", folder / "m.safetensors"), folder / "m.onnx",
                       echo=lambda s: None)


def _loads_or_refuses(path: Path) -> None:
    try:
        load_onnx_model(path)
    except ModelFileError as exc:
        assert "\n" not in str(exc)


@PROPERTY
@given(data=st.data())
def test_flipped_bytes_are_refused_or_loaded(data, exported):
    with tempfile.TemporaryDirectory() as d:
        _loads_or_refuses(flipped_copy(data, exported, Path(d) / "m.onnx"))


@settings(PROPERTY, max_examples=80)
@given(key=st.sampled_from(KEYS), value=JSON | st.text(max_size=20).map(lambda t: {"raw": t}))
def test_any_metadata_value_is_refused_or_loaded(key, value, exported):
    """A metadata field set to any JSON value, or to text that is not JSON."""
    import onnx
    proto = onnx.load(exported)
    for prop in proto.metadata_props:
        if prop.key == key:
            prop.value = value["raw"] if isinstance(value, dict) and "raw" in value \
                else json.dumps(value)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.onnx"
        path.write_bytes(proto.SerializeToString())
        _loads_or_refuses(path)
