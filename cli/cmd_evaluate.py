"""`genrecnn evaluate`: the dissertation's protocol (N random by-clip partitions) with a baseline.

Prints a table (mean test error with its 95% interval, for the ConvNet and for
MFCC + spectral statistics with logistic regression on the same partitions),
writes the mean confusion matrix as a PNG, and ``--json`` prints everything for
scripts.
"""
from __future__ import annotations

from pathlib import Path

import click

from genrecnn.cli.options import FRACTION, data_options, fit_options, json_option, report_skipped
from genrecnn.fsutil import json_text


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@data_options
@fit_options
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Number of random stratified by-clip partitions (N).")
@click.option("--test-fraction", type=FRACTION, default=0.2, show_default=True)
@click.option("--split", "split_dir", type=click.Path(path_type=Path),
              help="Train once on this split folder's train part (its valid part chooses the "
                   "epoch, or joins train with --select last), report on its test part.")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Also score MFCC + spectral statistics with logistic regression.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("confusion_matrix.png"),
              show_default=True, help="Where to write the mean confusion matrix PNG.")
@json_option
def evaluate(repeats, baseline, out, as_json, **options):
    """Mean test error over N partitions of DATA (95% interval), confusion matrix, baseline."""
    from genrecnn.run.evaluation import evaluate_folder
    from genrecnn.run.options import RunOptions

    echo = (lambda s: click.echo(s, err=True)) if as_json else click.echo
    result, report, ds = evaluate_folder(RunOptions(**options), repeats=repeats,
                                         baseline=baseline, out=out, echo=echo,
                                         progress=not as_json)
    if report is None:          # a rank other than 0 of an MPI run: rank 0 reports
        return
    if as_json:
        report_skipped(ds.skipped, echo)
        click.echo(json_text(result))
        return
    click.echo(report.table())
    click.echo(f"wrote {out}")
    report_skipped(ds.skipped, echo)
