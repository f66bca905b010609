"""`genrecnn predict`: the most likely genres of audio files (or spectrogram PNG / .npy).

MODEL is a model file from `genrecnn train` or an ``.onnx`` graph from `genrecnn
export` (run by onnxruntime). A clip longer than the model's input is cut into
half-overlapping windows whose probabilities are averaged (``--json`` and
``--timeline`` show them window by window); a clip shorter than training allowed
is refused, and one padded with silence says so (see :mod:`genrecnn.run.inference`).
A folder stands for the clips it holds, and a feature store for its clips (named
STORE/genre/stem); ``--csv`` tables one row per file.
"""
from __future__ import annotations

from pathlib import Path

import click

from genrecnn.cli.options import backend_option, json_option
from genrecnn.errors import DataError, GenrecnnError
from genrecnn.fsutil import json_text


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many genres to show per file.")
@click.option("--timeline", type=click.Path(path_type=Path),
              help="PNG of each genre's probability along the song, above its spectrogram "
                   "(one FILE).")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path),
              help="Write one CSV row per file (file, top genre, every genre's probability).")
@backend_option()
@json_option
def predict(model, files, top, timeline, csv_path, backend_spec, as_json):
    """Top genres with probabilities for each FILE (or folder of them, or feature store),
    using MODEL."""
    from genrecnn.music.features import FeatureCache
    from genrecnn.run.inference import check_stores, clip_probabilities
    from genrecnn.run.onnx_model import load_predictor
    from genrecnn.run.predict_report import combined_notes, input_files, result, write_csv
    from genrecnn.run.timeline import plot_timeline

    paths = input_files(files)
    if timeline is not None and len(paths) != 1:
        raise GenrecnnError(f"--timeline draws one song, but {len(paths)} files were given; "
                            f"pass one FILE")
    m = load_predictor(model, backend_spec, echo=lambda s: click.echo(s, err=True))
    check_stores(m, paths)
    for line in combined_notes(m, per_window=timeline is not None or as_json):
        click.echo(line, err=as_json or line.startswith("note:"))
    cache = FeatureCache()
    results, failed = [], []
    for path in paths:
        try:
            pred = clip_probabilities(m, path, cache)
        except DataError as exc:
            if len(paths) == 1:
                raise
            failed.append(str(exc))
            click.echo(f"error: {exc}", err=True)
            continue
        results.append(result(path, pred, m, min(top, len(m.names))))
        if not as_json:
            click.echo(f"{path}: " + ", ".join(f"{t['genre']} {t['probability']:.2f}"
                                               for t in results[-1]["top"]))
            for note in pred.notes:
                click.echo(f"  note: {note}")
        if timeline is not None:
            plot_timeline(pred, m, timeline, title=f"{path.name}: genre over time")
            click.echo(f"wrote {timeline}", err=True)
    for note in cache.notes():
        click.echo(f"note: {note}", err=True)
    if csv_path is not None:
        write_csv(csv_path, results, m.names)
        click.echo(f"wrote {csv_path} ({len(results)} row(s))", err=True)
    if as_json:
        click.echo(json_text(results))
    if failed:
        raise DataError(f"{len(failed)} of {len(paths)} file(s) could not be classified "
                        f"(see the errors above); fix or remove them")
