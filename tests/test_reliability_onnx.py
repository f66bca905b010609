"""Any bytes or metadata read as an ``.onnx`` model give a model or one clear line
(issue 23): the exported graph's reader trusts nothing."""
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
@given(blob=st.binary(max_size=3000))
def test_any_bytes_are_refused_with_one_line(blob):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.onnx"
        path.write_bytes(blob)
        with pytest.raises(ModelFileError) as err:
            load_onnx_model(path)
        assert "\n" not in str(err.value)


@PROPERTY
@given(data=st.data())
def test_flipped_bytes_are_refused_or_loaded(data, exported):
    blob = bytearray(exported.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(blob)))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.onnx"
        path.write_bytes(bytes(blob[:cut]))
        _loads_or_refuses(path)


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
