"""`genrecnn train`: fit a network on a folder of genre folders (or the synthetic default).

Writes OUT/model.safetensors (a checkpoint, atomically, after every epoch), OUT/metrics.json,
OUT/learning_curve.png and OUT/confusion_matrix.png (see :mod:`genrecnn.run.train_job`).
OUT is locked while a run writes there; a trained model in it is replaced only with --force.
"""
from __future__ import annotations

from pathlib import Path

import click

from genrecnn.cli.options import (FRACTION, FRACTION0, data_options, explicit_options,
                                  fit_options, json_option, report_skipped)
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
@click.option("--dry-run", is_flag=True, help="Print the placement plan and exit.")
@json_option
@click.pass_context
def train(ctx, **opts):
    """Train a genre classifier on DATA (genre folders), or on synthetic genres if no DATA."""
    from genrecnn.run.options import RunOptions
    from genrecnn.run.train_job import run_train

    as_json = opts.pop("as_json")
    echo = (lambda s: click.echo(s, err=True)) if as_json else click.echo
    job = {k: opts.pop(k) for k in ("resume", "force", "dry_run")}
    out = opts.pop("out")
    metrics = run_train(RunOptions(**opts), out, explicit=explicit_options(ctx), echo=echo,
                        progress=None if not as_json else False, **job)
    if metrics is None:
        return
    report_skipped([(s["path"], s["reason"]) for s in metrics["skipped"]], echo)
    if as_json:
        click.echo(json_text(metrics))
