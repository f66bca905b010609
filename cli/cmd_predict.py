"""`genrecnn predict`: the most likely genres of audio files (or spectrogram PNG / .npy).

A clip longer than the model's input is cut into half-overlapping windows whose
probabilities are averaged (see :mod:`genrecnn.run.inference`).
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from genrecnn.cli.options import backend_option, json_option
from genrecnn.errors import DataError


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many genres to show per file.")
@backend_option()
@json_option
def predict(model, files, top, backend_spec, as_json):
    """Top genres with probabilities for each FILE, using MODEL (from `genrecnn train`)."""
    from genrecnn.music.features import FeatureCache
    from genrecnn.run.inference import file_probabilities, load_inference_model

    net, params, normalizer, names = load_inference_model(
        model, backend_spec, echo=lambda s: click.echo(s, err=True))
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
