"""Predicting with an exported ``.onnx`` model through onnxruntime, no genrecnn backend
involved, so its answers can be set beside the genrecnn model's.

Only graphs written by `genrecnn export` are taken: their metadata (feature
parameters, class names, input shape) is checked as a model file's header is.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genrecnn.errors import GenrecnnError, ModelFileError
from genrecnn.fsutil import regular_file_problem
from genrecnn.run.onnx_export import INPUT, ONNX_FORMAT, ONNX_VERSION, OUTPUT


class OnnxNetwork:
    """The part of a genrecnn Network that prediction uses, run by onnxruntime."""

    def __init__(self, session, input_shape: tuple[int, int], n_classes: int):
        self.session = session
        self.input_shape, self.n_classes = input_shape, n_classes

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        probs = self.session.run([OUTPUT], {INPUT: np.asarray(x, dtype=np.float32)})[0]
        return np.asarray(probs, dtype=np.float64)


def _not_export(path, what: str) -> ModelFileError:
    return ModelFileError(f"{path} is not a genrecnn ONNX export ({what}); write one with "
                          f"`genrecnn export MODEL OUT.onnx`")


def _session(path: Path):
    try:
        import onnxruntime
    except ImportError:
        raise GenrecnnError("predicting with an .onnx model needs onnxruntime; install it "
                            "with `pip install genrecnn[onnx]`") from None
    problem = regular_file_problem(path)
    if problem is not None:
        raise ModelFileError(f"model file {path} "
                             f"{'does not exist' if not path.exists() else problem}; pass an "
                             f".onnx file written by `genrecnn export`")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3              # its warnings would come before our line
    try:
        return onnxruntime.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
    except Exception:       # onnxruntime's own errors of a damaged or foreign file
        raise ModelFileError(f"{path} is not a readable ONNX model (truncated, damaged or "
                             f"another format); export it again") from None


def _metadata(path: Path, session) -> dict:
    """The export's metadata fields, each parsed from its JSON string."""
    props = session.get_modelmeta().custom_metadata_map
    if props.get("format") != json.dumps(ONNX_FORMAT):
        raise _not_export(path, "no genrecnn metadata")
    try:
        meta = {k: json.loads(v) for k, v in props.items()}
    except (ValueError, RecursionError):
        raise _not_export(path, "its metadata is not valid JSON") from None
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > ONNX_VERSION:
        raise _not_export(path, f"export format version {str(version)[:20]}; this genrecnn "
                                f"reads up to {ONNX_VERSION}")
    return meta


def _check_io(path: Path, session, shape: list, n_names: int) -> None:
    """The graph's input and output are what its metadata says."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != [INPUT] or list(inputs[0].shape[1:]) != shape:
        raise _not_export(path, f"its input is not {INPUT} [batch, {shape[0]}, {shape[1]}]")
    if [o.name for o in outputs] != [OUTPUT] or outputs[0].shape[1:] != [n_names]:
        raise _not_export(path, f"its output is not {OUTPUT} [batch, {n_names}]")


def load_onnx_model(path: Path):
    """An :class:`~genrecnn.run.inference.InferenceModel` whose network is the ONNX graph
    at ``path`` (the graph normalises its input itself)."""
    from genrecnn.music.features import FeatureParams
    from genrecnn.run.inference import InferenceModel

    path = Path(path)
    session = _session(path)
    meta = _metadata(path, session)
    names, shape = meta.get("class_names"), meta.get("input_shape")
    if not (isinstance(names, list) and len(names) >= 2
            and all(isinstance(n, str) for n in names)):
        raise _not_export(path, f"class names {str(names)[:40]}")
    if not (isinstance(shape, list) and len(shape) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise _not_export(path, f"input shape {str(shape)[:40]}")
    try:
        params = FeatureParams.from_dict(meta.get("feature_params"))
    except (GenrecnnError, TypeError, ValueError, AttributeError) as exc:
        raise _not_export(path, f"unusable feature parameters: {str(exc)[:60]}") from None
    if params.n_mels != shape[0]:
        raise _not_export(path, f"{params.n_mels} mel bands for input {shape}")
    _check_io(path, session, shape, len(names))
    ensemble = meta.get("ensemble", 1)
    if not (isinstance(ensemble, int) and not isinstance(ensemble, bool) and ensemble >= 1):
        raise _not_export(path, f"ensemble {str(ensemble)[:20]}")
    net = OnnxNetwork(session, tuple(shape), len(names))
    return InferenceModel(net, params, None, names, windowed=meta.get("windowed") is True,
                          padded=meta.get("padded") is True, ensemble=ensemble)


def load_predictor(path: Path, backend_spec: str, echo=print):
    """What predict runs: an exported ``.onnx`` graph (through onnxruntime) or a genrecnn
    model file (placed per ``backend_spec``)."""
    from genrecnn.run.inference import load_inference_model

    if Path(path).suffix == ".onnx":
        return load_onnx_model(path)
    return load_inference_model(path, backend_spec, echo=echo)
