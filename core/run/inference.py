"""Using a trained model: load it for inference, cut a clip into the windows the
network takes, average their probabilities, and show first-layer filter outputs.

Features are computed with the parameters stored in the model and normalised
with its stored statistics, so a clip is seen exactly as in training.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genrecnn.engine.autoplace import place_by_option
from genrecnn.errors import GenrecnnError, ModelFileError
from genrecnn.music.dataset import window_starts
from genrecnn.music.features import FeatureParams, fit_length, load_features
from genrecnn.run.fit import predict_proba
from genrecnn.run.model_io import load_model
from genrecnn.run.parts import normalizer_from_extra


def load_inference_model(path: Path, backend_spec: str, echo=print):
    """(network placed per ``backend_spec``, FeatureParams, normaliser or None, class names)."""
    net, meta, extra = load_model(path)
    if "class_names" not in meta or "feature_params" not in meta:
        raise ModelFileError(f"{path} lacks class names or feature parameters; use a model "
                             f"written by `genrecnn train`")
    try:
        params = FeatureParams.from_dict(meta["feature_params"])
    except (GenrecnnError, TypeError) as exc:
        raise ModelFileError(f"{path} has unusable feature parameters ({exc}); retrain it") \
            from None
    names = list(meta["class_names"])
    if len(names) != net.n_classes or params.n_mels != net.input_shape[0]:
        raise ModelFileError(f"{path} is inconsistent ({len(names)} class names for "
                             f"{net.n_classes} outputs, {params.n_mels} mel bands for input "
                             f"{net.input_shape}); retrain it")
    normalizer = normalizer_from_extra(extra)
    if meta.get("norm", "none") == "band" and normalizer is None:
        raise ModelFileError(f"{path} says its input is band-normalised but holds no "
                             f"statistics; retrain it")
    place_by_option(net, backend_spec, batch_size=8, echo=echo)
    return net, params, normalizer, names


def clip_windows(feat: np.ndarray, frames: int) -> np.ndarray:
    """[n_mels, F] -> [n_windows, n_mels, frames]: half-overlapping windows, or one padded clip."""
    if feat.shape[1] <= frames:
        return fit_length(feat, frames)[None]
    starts = window_starts(feat.shape[1], frames, max(frames // 2, 1))
    return np.stack([feat[:, s:s + frames] for s in starts])


def file_probabilities(net, params, normalizer, path: Path, cache) -> tuple[np.ndarray, int]:
    """(mean class probabilities over the clip's windows, number of windows)."""
    x = clip_windows(load_features(path, params, cache=cache), net.input_shape[1])
    if normalizer is not None:
        x = normalizer.transform(x)
    return predict_proba(net, x).mean(axis=0), len(x)


def parse_filters(text: str, n_filters: int) -> list[int]:
    """``"0,1,2"`` -> filter indices, each checked against the first layer's count."""
    try:
        chosen = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise GenrecnnError(f"--filters {text!r} is not a comma list of integers; "
                            f"write e.g. 0,1,2") from None
    bad = [f for f in chosen if not 0 <= f < n_filters]
    if not chosen or bad:
        raise GenrecnnError(f"--filters {text!r}: the first layer has {n_filters} filters; "
                            f"choose indices from 0 to {n_filters - 1}")
    return chosen


def first_layer_outputs(net, x):
    """Outputs of the network's first layer on one input [n_mels, W], on its backend:
    [F, W-K+1] for a time-axis convolution, [F, bands, frames] for a 2-D one."""
    layer, be = net.layers[0], net.backends[0]
    width = layer.kernel[1] if layer.type == "conv2d" else layer.width
    if x.shape[1] < width:
        raise GenrecnnError(f"the clip has {x.shape[1]} frames, fewer than the filter width "
                            f"{width}; use a longer clip")
    shape = (1, *layer.input_shape[:-1], x.shape[1])
    y = layer.forward(be, be.from_host(x.reshape(shape).astype(net.dtype)), train=False)
    return be.to_host(y)[0]
