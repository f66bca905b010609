"""Using a trained model: load it for inference, cut a clip into the windows the
network takes, average their probabilities, and show first-layer filter outputs.

Features are computed with the parameters stored in the model and normalised
with its stored statistics, so a clip is seen exactly as in training. A model
file of an ensemble answers with the mean of its networks' probabilities; one
trained ``--with-baseline`` with the mean of the network's answer and its
baseline's on the clip's items (:mod:`genrecnn.run.combined`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genrecnn.engine.autoplace import place_by_option
from genrecnn.errors import DataError, GenrecnnError, ModelFileError
from genrecnn.music.features import (MIN_FRAMES, FeatureParams, fit_length, load_features,
                                     native_rate)
from genrecnn.music.input_kinds import INPUT_KINDS, check_input_kind
from genrecnn.run.combined import combine, read_baseline
from genrecnn.run.crops import covering_starts
from genrecnn.run.ensemble import as_predictor
from genrecnn.run.fit import predict_proba
from genrecnn.run.model_io import is_int, load_members
from genrecnn.run.npz_model import legacy_note
from genrecnn.run.parts import normalizer_from_extra
from genrecnn.run.settings import NORMS
from genrecnn.run.store_items import StoreClip, store_input_kind


@dataclass
class InferenceModel:
    """A loaded model and what it needs to see a clip as in training."""

    net: object                       # a Network, or an Ensemble of them
    params: FeatureParams
    normalizer: object                # BandNormalizer or None
    names: list[str]
    windowed: bool                    # trained on windows cut from the clips
    padded: bool                      # trained with --frames: short clips were padded
    input_kind: str | None = None     # audio, png or npy (None: an older model)
    ensemble: int = 1                 # how many networks answer (their mean)
    baseline: object = None           # a LinearBaseline answering with the network, or None

    @property
    def frames(self) -> int:
        return self.net.input_shape[1]

    @property
    def shortest(self) -> int:
        """Fewest frames a clip may have: as in training, one whole window, or at most half
        the input padding with --frames; else the input (training padded nothing: the
        input is its shortest clip)."""
        if self.padded and not self.windowed:
            return max(MIN_FRAMES, math.ceil(self.frames / 2))
        return self.frames

    def why_shortest(self) -> str:
        if self.windowed:
            return f"it was trained on whole windows of {self.seconds(self.frames)}"
        if self.padded:
            return (f"training kept no clip shorter than half its input of "
                    f"{self.seconds(self.frames)}")
        return (f"it was trained on clips of at least its input, {self.seconds(self.frames)}, "
                f"none padded")

    def seconds(self, frames: int) -> str:
        return f"{frames * self.params.hop_length / self.params.sr:.1f} s"


@dataclass
class Prediction:
    probs: np.ndarray                 # mean class probabilities over the windows
    windows: int
    padded_frames: int = 0            # silence added to reach the model's input length
    notes: list[str] = field(default_factory=list)
    window_probs: np.ndarray | None = None    # [windows, classes], along the song
    window_starts: list[int] = field(default_factory=list)    # each window's first frame
    features: np.ndarray | None = None        # the clip's log-mel features [mels, frames]
    network_probs: np.ndarray | None = None   # with a baseline: the network's answer
    baseline_probs: np.ndarray | None = None  # and the baseline's (``probs``: their mean)


def _meta_problem(meta: dict, n_classes: int) -> str | None:
    names = meta.get("class_names")
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        return f"class names {names!r:.60}"
    if len(names) != n_classes:
        return f"{len(names)} class names for {n_classes} outputs"
    if meta.get("norm", "none") not in NORMS:
        return f"input normalisation {meta.get('norm')!r:.40}"
    if meta.get("input_kind") not in (None, *INPUT_KINDS):
        return f"input kind {meta.get('input_kind')!r:.40}"
    windows = meta.get("windows")
    if windows is not None and not (is_int(windows) and windows >= 1):
        return f"windows {windows!r:.40}"
    return None


def load_inference_model(path: Path, backend_spec: str, echo=print) -> InferenceModel:
    """The model at ``path``, placed per ``backend_spec``, with its feature parameters,
    normaliser and class names checked."""
    if Path(path).suffix == ".onnx":
        raise ModelFileError(f"{path} is an ONNX export, which only predict runs; pass the "
                             f"genrecnn model file it was exported from (model.safetensors)")
    members = load_members(path)
    net, meta, extra = members[0]
    if "class_names" not in meta or "feature_params" not in meta:
        raise ModelFileError(f"{path} lacks class names or feature parameters; use a model "
                             f"written by `genrecnn train`")
    problem = _meta_problem(meta, net.n_classes)
    if problem:
        raise ModelFileError(f"{path} has unusable {problem} in its header; retrain it or "
                             f"restore the file")
    try:
        params = FeatureParams.from_dict(meta["feature_params"])
    except (GenrecnnError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{path} has unusable feature parameters ({exc}); retrain it") \
            from None
    if params.n_mels != net.input_shape[0]:
        raise ModelFileError(f"{path} is inconsistent ({params.n_mels} mel bands for input "
                             f"{net.input_shape}); retrain it")
    try:
        normalizer = normalizer_from_extra(extra)
    except (GenrecnnError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} has unusable normalisation statistics ({exc}); "
                             f"retrain it") from None
    if meta.get("norm", "none") == "band" and normalizer is None:
        raise ModelFileError(f"{path} says its input is band-normalised but holds no "
                             f"statistics; retrain it")
    if normalizer is not None and normalizer.n_bands != params.n_mels:
        raise ModelFileError(f"{path} holds normalisation statistics of {normalizer.n_bands} "
                             f"bands for {params.n_mels} mel bands; retrain it")
    baseline = read_baseline(path, meta, extra, params.n_mels, net.n_classes)
    plan, _ = place_by_option(net, backend_spec, batch_size=8, echo=echo)
    for other, _, _ in members[1:]:
        other.place(plan)
    if legacy_note(path):
        echo(legacy_note(path))
    _note_unfinished(path, meta, len(members), echo)
    run = meta.get("run") if isinstance(meta.get("run"), dict) else {}
    return InferenceModel(as_predictor([m[0] for m in members]), params, normalizer,
                          list(meta["class_names"]),
                          windowed=meta.get("windows") is not None,
                          padded=run.get("frames") is not None,
                          input_kind=meta.get("input_kind"), ensemble=len(members),
                          baseline=baseline)


def _note_unfinished(path, meta: dict, held: int, echo) -> None:
    """A note where a model file holds fewer networks than its training was asked for (an
    ensemble's run was stopped): its answer is the mean of those it holds."""
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    asked = settings.get("ensemble", 1)
    if is_int(asked) and asked > held:
        echo(f"note: {path} holds {held} of the {asked} networks its training was asked for "
             f"(it was stopped); it answers with those, and `genrecnn train --resume` trains "
             f"the rest")


def clip_windows(feat: np.ndarray, frames: int) -> np.ndarray:
    """[n_mels, F] -> [n_windows, n_mels, frames]: half-overlapping windows covering the
    clip to its last frame (as evaluation judges clips), or one padded clip."""
    if feat.shape[1] <= frames:
        return fit_length(feat, frames)[None]
    return np.stack([feat[:, s:s + frames] for s in covering_starts(feat.shape[1], frames)])


def file_probabilities(model: InferenceModel, path: Path, cache) -> Prediction:
    """The clip's class probabilities: each half-overlapping window's and their mean (the
    whole clip's answer), or DataError.

    A clip shorter than :attr:`InferenceModel.shortest` is refused (training
    never saw one so short, and padding it with silence gives confident
    nonsense); a shorter-than-input clip is padded with silence only where
    training padded too (``--frames``), and the prediction says so. Audio whose band ends below the features' top
    frequency gets a note.
    """
    feat = load_features(path, model.params, cache=cache)
    check_input_kind(model.input_kind, path)
    pred = features_probabilities(model, feat, path)
    rate = native_rate(path)
    if rate is not None and rate / 2 < model.params.fmax:
        pred.notes.append(f"{path} is sampled at {rate} Hz, so it holds nothing above "
                          f"{rate / 2:.0f} Hz, while the model's features reach "
                          f"{model.params.fmax:.0f} Hz: the answer may be unreliable")
    return pred


def clip_probabilities(model: InferenceModel, clip, cache) -> Prediction:
    """:func:`file_probabilities` of a file, or of one clip of a feature store (a
    :class:`~genrecnn.run.store_items.StoreClip`: its features as the store holds them;
    the store must have passed :func:`check_store`)."""
    if not isinstance(clip, StoreClip):
        return file_probabilities(model, clip, cache)
    return features_probabilities(model, np.asarray(clip.store.clip(clip.index)), clip)


def check_stores(model: InferenceModel, clips) -> None:
    """Refuse, once per store among ``clips``, a store whose features were made with other
    parameters, or from another kind of input, than the model's."""
    for store in {id(c.store): c.store for c in clips if isinstance(c, StoreClip)}.values():
        _check_store(model, store)


def _check_store(model: InferenceModel, store) -> None:
    if store.params != model.params:
        raise DataError(f"{store.path} holds features made with other parameters "
                        f"({store.params.as_dict()}) than the model's "
                        f"({model.params.as_dict()}); predict from the audio files, or make a "
                        f"store with the model's parameters")
    kind = store_input_kind(store)
    if model.input_kind is not None and kind != model.input_kind:
        raise DataError(f"{store.path} holds features of {INPUT_KINDS[kind]}, but the model "
                        f"was trained on {INPUT_KINDS[model.input_kind]}; the value scales "
                        f"differ, so its answers would mean nothing: use a model trained on "
                        f"{kind} inputs")


def features_probabilities(model: InferenceModel, feat: np.ndarray, path) -> Prediction:
    """A clip's probabilities from its features [n_mels, frames] (``path`` names it)."""
    n = feat.shape[1]
    if n < model.shortest:
        raise DataError(f"{path}: is too short for this model: {model.seconds(n)} ({n} frames), "
                        f"at least {model.seconds(model.shortest)} ({model.shortest} frames) "
                        f"needed, as {model.why_shortest()}; use a longer clip")
    x = clip_windows(feat, model.frames)
    if model.normalizer is not None:
        x = model.normalizer.transform(x)
    per_window = predict_proba(model.net, x)
    if not np.isfinite(per_window).all():
        raise GenrecnnError(f"the model gave non-finite probabilities for {path}; its weights "
                            f"are unusable: retrain it")
    pred = Prediction(per_window.mean(axis=0), len(x), padded_frames=max(model.frames - n, 0),
                      window_probs=per_window, window_starts=covering_starts(n, model.frames),
                      features=feat)
    if model.baseline is not None:
        frames = model.baseline.frames
        combine(pred, model.baseline, feat[None] if frames is None else clip_windows(feat, frames))
    if pred.padded_frames:
        pred.notes.append(f"the {model.seconds(n)} clip was padded with "
                          f"{model.seconds(pred.padded_frames)} of silence to the model's "
                          f"{model.seconds(model.frames)} input, as training pads short clips")
    return pred


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
