"""`genrecnn predict`: the most likely genres of audio files (or spectrogram PNG / .npy).

A clip longer than the model's input is cut into half-overlapping windows whose
probabilities are averaged; a clip shorter than training allowed is refused, and
one padded with silence says so (see :mod:`genrecnn.run.inference`).
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from genrecnn.cli.options import backend_option, json_option
from genrecnn.errors import DataError
from genrecnn.fsutil import json_text


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

    m = load_inference_model(model, backend_spec, echo=lambda s: click.echo(s, err=True))
    cache = FeatureCache()
    top = min(top, len(m.names))
    results, failed = [], []
    for path in files:
        try:
            pred = file_probabilities(m, path, cache)
        except DataError as exc:
            if len(files) == 1:
                raise
            failed.append(str(exc))
            click.echo(f"error: {exc}", err=True)
            continue
        order = np.argsort(-pred.probs)[:top]
        results.append({"file": str(path), "windows": pred.windows,
                        "padded_frames": pred.padded_frames, "notes": pred.notes,
                        "top": [{"genre": m.names[i], "probability": float(pred.probs[i])}
                                for i in order]})
        if not as_json:
            click.echo(f"{path}: " + ", ".join(f"{m.names[i]} {pred.probs[i]:.2f}"
                                               for i in order))
            for note in pred.notes:
                click.echo(f"  note: {note}")
    if as_json:
        click.echo(json_text(results))
    if failed:
        raise DataError(f"{len(failed)} of {len(files)} file(s) could not be classified "
                        f"(see the errors above); fix or remove them")
