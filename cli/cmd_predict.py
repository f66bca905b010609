"""`genrecnn predict`: the most likely genres of audio files (or spectrogram PNG / .npy).

Features are computed with the parameters stored in the model and normalised
with its stored statistics; a clip longer than the model's input is cut into
half-overlapping windows whose probabilities are averaged.
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from genrecnn.errors import DataError, GenrecnnError, ModelFileError


def load_inference_model(path: Path, backend_spec: str):
    """(network placed per ``backend_spec``, FeatureParams, normaliser or None, class names)."""
    from genrecnn.music.features import FeatureParams
    from genrecnn.run.model_io import load_model
    from genrecnn.engine.placement import apply_backend_option
    from genrecnn.run.trainer import normalizer_from_extra

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
    apply_backend_option(net, backend_spec, batch_size=8, echo=lambda s: click.echo(s, err=True))
    return net, params, normalizer, names


def clip_windows(feat: np.ndarray, frames: int) -> np.ndarray:
    """[n_mels, F] -> [n_windows, n_mels, frames]: half-overlapping windows, or one padded clip."""
    from genrecnn.music.dataset import window_starts
    from genrecnn.music.features import fit_length

    if feat.shape[1] <= frames:
        return fit_length(feat, frames)[None]
    starts = window_starts(feat.shape[1], frames, max(frames // 2, 1))
    return np.stack([feat[:, s:s + frames] for s in starts])


def file_probabilities(net, params, normalizer, path: Path, cache) -> tuple[np.ndarray, int]:
    """(mean class probabilities over the clip's windows, number of windows)."""
    from genrecnn.music.features import load_features
    from genrecnn.run.training import predict_proba

    x = clip_windows(load_features(path, params, cache=cache), net.input_shape[1])
    if normalizer is not None:
        x = normalizer.transform(x)
    return predict_proba(net, x).mean(axis=0), len(x)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many genres to show per file.")
@click.option("--backend", "backend_spec", default="numpy", show_default=True,
              help="Placement: a backend name, kind=backend,... or auto.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def predict(model, files, top, backend_spec, as_json):
    """Top genres with probabilities for each FILE, using MODEL (from `genrecnn train`)."""
    from genrecnn.music.features import FeatureCache

    net, params, normalizer, names = load_inference_model(model, backend_spec)
    cache = FeatureCache()
    top = min(top, len(names))
    results, failed = [], []
    for path in files:
        try:
            probs, n_windows = file_probabilities(net, params, normalizer, path, cache)
        except DataError as exc:
            failed.append(str(exc))
            click.echo(f"error: {exc}", err=True)
            continue
        order = np.argsort(-probs)[:top]
        results.append({"file": str(path), "windows": n_windows,
                        "top": [{"genre": names[i], "probability": float(probs[i])}
                                for i in order]})
        if not as_json:
            click.echo(f"{path}: " + ", ".join(f"{names[i]} {probs[i]:.2f}" for i in order))
    if as_json:
        click.echo(json.dumps(results, indent=2))
    if failed:
        raise DataError(f"{len(failed)} of {len(files)} file(s) could not be classified "
                        f"(see the errors above); fix or remove them")
