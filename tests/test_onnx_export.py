"""`genrecnn export` (issue 23): the inference network as an ONNX graph whose answers
onnxruntime gives within 1e-5 of genrecnn's, for every layer type the shipped
architectures use; predict runs it; an .onnx file that is no genrecnn export is
refused with one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the [onnx] extra (onnx) is not installed")
ort = pytest.importorskip("onnxruntime", reason="the [onnx] extra (onnxruntime) is not installed")

from genrecnn.errors import ModelFileError  # noqa: E402
from genrecnn.run.fit import predict_proba  # noqa: E402
from genrecnn.run.inference import load_inference_model  # noqa: E402
from genrecnn.run.model_io import MODEL_FILE  # noqa: E402
from genrecnn.run.onnx_export import export_onnx  # noqa: E402
from genrecnn.run.onnx_model import load_onnx_model  # noqa: E402

from badinput import one_error_line, run_cli  # noqa: E402
from onnx_models import FRAMES, NAMES, log_mel_batch, random_model  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.usefixtures("own_cache")]
QUIET = dict(echo=lambda s: None)


def _both(model_path: Path, onnx_path: Path, x: np.ndarray):
    """(genrecnn's, onnxruntime's) probabilities for the log-mel batch ``x``."""
    ours = load_inference_model(model_path, "numpy", **QUIET)
    theirs = load_onnx_model(onnx_path)
    return (predict_proba(ours.net, ours.normalizer.transform(x)),
            predict_proba(theirs.net, x))


@pytest.mark.parametrize("arch", ["cnn2d", "cangea2016", "small", "cnn2d-global"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exported_graph_gives_genrecnn_probabilities(arch, dtype, tmp_path):
    model = random_model(arch, tmp_path / MODEL_FILE, dtype=dtype)
    export_onnx(model, tmp_path / "m.onnx", **QUIET)
    ours, theirs = _both(model, tmp_path / "m.onnx", log_mel_batch(5))
    assert ours.min() > 1e-3 and ours.max() < 0.999     # not saturated: a real comparison
    error = np.abs(ours - theirs).max()
    assert error < 1e-5
    other = _both(model, tmp_path / "m.onnx", log_mel_batch(5, seed=2))[1]
    assert np.abs(other - theirs).max() > 100 * error   # other input, other answer: it reads it


def test_graph_is_checked_and_carries_its_metadata(tmp_path):
    model = random_model("cnn2d", tmp_path / MODEL_FILE)
    export_onnx(model, tmp_path / "m.onnx", **QUIET)
    proto = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(proto, full_check=True)
    props = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert props["class_names"] == NAMES and props["feature_params"]["n_mels"] == 128
    ops = [n.op_type for n in proto.graph.node]
    assert ops[:2] == ["Sub", "Div"]                     # per-band normalisation first
    assert {"Conv", "BatchNormalization", "Relu", "MaxPool", "ReduceMean", "ReduceMax",
            "ReduceL2", "Gemm", "Softmax"} <= set(ops)
    assert "Dropout" not in ops
    assert [d.dim_param or d.dim_value for d in
            proto.graph.input[0].type.tensor_type.shape.dim] == ["batch", 128, FRAMES]


def test_cli_export_then_predict_agree(trained, npy_data, tmp_path, capsys, strict_json):
    code, out, _ = run_cli(["export", trained / MODEL_FILE, tmp_path / "m.onnx"], capsys)
    assert code == 0 and "wrote" in out
    clip = npy_data / "high" / "high.00001.npy"
    answers = []
    for model in (trained / MODEL_FILE, tmp_path / "m.onnx"):
        code, out, _ = run_cli(["predict", model, clip, "--json"], capsys)
        assert code == 0
        answers.append(strict_json(out)[0]["probabilities"])
    assert answers[0].keys() == answers[1].keys() == {"high", "low"}
    assert all(abs(answers[0][k] - answers[1][k]) < 1e-5 for k in answers[0])


def _foreign_onnx(path: Path) -> Path:
    """A valid ONNX model that genrecnn did not write (no metadata)."""
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def _edited_props(src: Path, dst: Path, **props) -> Path:
    proto = onnx.load(src)
    for p in proto.metadata_props:
        if p.key in props:
            p.value = props[p.key]
    dst.write_bytes(proto.SerializeToString())
    return dst


def test_bad_onnx_files_are_one_clear_line(trained, npy_data, tmp_path, capsys):
    good = tmp_path / "good.onnx"
    assert run_cli(["export", trained / MODEL_FILE, good], capsys)[0] == 0
    blob = good.read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "text.onnx").write_text("hello")
    cases = {
        _foreign_onnx(tmp_path / "foreign.onnx"): "not a genrecnn ONNX export (no genrecnn",
        tmp_path / "truncated.onnx": "not a readable ONNX model",
        tmp_path / "text.onnx": "not a readable ONNX model",
        tmp_path / "missing.onnx": "does not exist",
        _edited_props(good, tmp_path / "names.onnx", class_names='["one"]'): "class names",
        _edited_props(good, tmp_path / "json.onnx", class_names="[not json"): "not valid JSON",
        _edited_props(good, tmp_path / "params.onnx", feature_params='{"sr": "fast"}'):
            "feature parameters",
        _edited_props(good, tmp_path / "shape.onnx", input_shape="[64, 40]"): "mel bands",
    }
    clip = npy_data / "low" / "low.00000.npy"
    for path, words in cases.items():
        code, _, err = run_cli(["predict", path, clip], capsys)
        assert code == 2 and words in one_error_line(err), (path.name, err)
    with pytest.raises(ModelFileError):
        load_onnx_model(tmp_path / "foreign.onnx")
    code, _, err = run_cli(["filters", good, clip, "--out", tmp_path / "f.png"], capsys)
    assert code == 2 and "only predict runs" in one_error_line(err)


def test_export_refuses_bad_models_and_names(trained, tmp_path, capsys):
    code, _, err = run_cli(["export", trained / MODEL_FILE, tmp_path / "m.txt"], capsys)
    assert code == 2 and "does not end in .onnx" in one_error_line(err)
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    code, _, err = run_cli(["export", tmp_path / "bad.safetensors", tmp_path / "m.onnx"], capsys)
    assert code == 2 and "not a readable genrecnn model" in one_error_line(err)
    assert not (tmp_path / "m.onnx").exists()
