"""`genrecnn train`: fit a network on a folder of genre folders (or the synthetic default).

Writes OUT/model.safetensors (a checkpoint, atomically, after every epoch), OUT/metrics.json,
OUT/learning_curve.png and OUT/confusion_matrix.png (see :mod:`genrecnn.run.train_job`).
OUT is locked while a run writes there; a trained model in it is replaced only with --force.
"""
from __future__ import annotations

from pathlib import Path

import click

from genrecnn.cli.options import (FRACTION, FRACTION0, data_options, explicit_options,
                                  fit_options, json_option)
from genrecnn.fsutil import json_text


@click.command()
@click.argument("data", required=False, type=click.Path(path_type=Path))
@data_options
@fit_options
@click.option("--out", type=click.Path(path_type=Path), default=Path("genrecnn-run"),
              show_default=True, help="Folder for model.safetensors, metrics.json and plots.")
@click.option("--resume", is_flag=True, help="Continue from OUT/model.safetensors.")
@click.option("--force", is_flag=True,
              help="Replace a trained model already in OUT (refused without this or --resume).")
@click.option("--test-fraction", type=FRACTION, default=0.2, show_default=True)
@click.option("--valid-fraction", type=FRACTION0, default=0.0, show_default=True)
@click.option("--split", "split_dir", type=click.Path(path_type=Path),
              help="Folder with train.txt/valid.txt/test.txt clip ids (overrides fractions).")
@click.option("--with-baseline", is_flag=True,
              help="Also fit the baseline (MFCC and spectral statistics, logistic regression) "
                   "on the training items and keep it in the model, which then answers with "
                   "the mean of both models' class probabilities.")
@click.option("--dry-run", is_flag=True, help="Print the placement plan and exit.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@json_option
@click.pass_context
def train(ctx, **opts):
    """Train a genre classifier on DATA (genre folders), or on synthetic genres if no DATA."""
    from genrecnn.run.options import RunOptions
    from genrecnn.run.train_job import run_train

    as_json, quiet = opts.pop("as_json"), opts.pop("quiet")
    echo = (lambda s: click.echo(s, err=True)) if as_json else click.echo
    job = {k: opts.pop(k) for k in ("resume", "force", "dry_run")}
    out = opts.pop("out")
    try:
        metrics = run_train(RunOptions(**opts), out, explicit=explicit_options(ctx), echo=echo,
                            progress=False if as_json or quiet else None, **job)
    except KeyboardInterrupt:
        _say_what_was_kept(out)
        raise
    if metrics is None:
        return
    if as_json:
        click.echo(json_text(metrics))


def _say_what_was_kept(out: Path) -> None:
    """On Ctrl-C: name the checkpoint a later run can continue from, if there is one."""
    from genrecnn.run.model_io import stored_model

    if stored_model(out).exists():
        click.echo(f"interrupted: {stored_model(out)} keeps the last finished epoch; continue "
                   f"with the same command plus --resume (and --out {out})", err=True)
    else:
        click.echo("interrupted before the first epoch ended: nothing was kept", err=True)
