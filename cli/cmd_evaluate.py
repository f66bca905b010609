"""`genrecnn evaluate`: the dissertation's protocol (N random by-clip partitions) with a baseline.

Prints a table (mean test error with its 95% interval, for the ConvNet and for
MFCC + spectral statistics with logistic regression on the same partitions),
writes the mean confusion matrix as a PNG, and ``--json`` prints everything for
scripts.
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from genrecnn.cli.cmd_train import FRACTION, data_options, fit_options, load_data, report_skipped


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@data_options
@fit_options
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Number of random stratified by-clip partitions (N).")
@click.option("--test-fraction", type=FRACTION, default=0.2, show_default=True)
@click.option("--split", "split_dir", type=click.Path(path_type=Path),
              help="Train once on train(+valid) of this split folder, report on its test.")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Also score MFCC + spectral statistics with logistic regression.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("confusion_matrix.png"),
              show_default=True, help="Where to write the mean confusion matrix PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def evaluate(data, genres, frames, windows, strict, backend_spec, arch, epochs, batch_size, lr,
             optimizer, norm, seed, vote, repeats, test_fraction, split_dir, baseline, out,
             as_json):
    """Mean test error over N partitions of DATA (95% interval), confusion matrix, baseline."""
    from genrecnn.run.evaluation import run_protocol
    from genrecnn.run.plots import confusion_matrix
    from genrecnn.run.trainer import TrainSettings, check_writable_dir

    echo = (lambda s: click.echo(s, err=True)) if as_json else click.echo
    check_writable_dir(out.parent)   # fail now, not after training, if out is unwritable
    settings = TrainSettings(arch=arch, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                             lr=lr, norm=norm, seed=seed)
    ds = load_data(data, genres, frames, windows, strict, progress=not as_json)
    echo(f"data: {data}, {len(ds.clip_ids)} clips of {ds.n_classes} classes "
         f"({', '.join(ds.class_names)}), {len(ds.x)} items of {ds.input_shape[0]}x"
         f"{ds.input_shape[1]}")
    report = run_protocol(ds, settings, repeats=repeats, test_fraction=test_fraction,
                          split_dir=split_dir, placement=_placement(backend_spec, settings, ds),
                          vote=vote, baseline=baseline, echo=echo)
    confusion_matrix(report.network.mean_confusion(), ds.class_names, out,
                     title=f"convnet, mean over {report.partitions} partition(s)")
    result = dict(report.as_dict(), confusion_png=str(out),
                  skipped=[{"path": p, "reason": r} for p, r in ds.skipped])
    if as_json:
        report_skipped(ds, echo)
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(_table(report))
    click.echo(f"wrote {out}")
    report_skipped(ds, echo)


def _placement(spec: str, settings, ds):
    """Resolve --backend once (auto measures once), as a per-layer list for every partition."""
    from genrecnn.engine.placement import apply_backend_option
    from genrecnn.run.trainer import new_network

    net = new_network(settings, ds.input_shape[0], ds.input_shape[1], ds.n_classes)
    return list(apply_backend_option(net, spec, settings.batch_size, dry_run=True,
                                     echo=lambda s: click.echo(f"placement: {s}", err=True)))


def _table(report) -> str:
    n = report.partitions
    m = int(round(np.mean(report.network.m)))
    head = (f"{'method':<10} {'error':>7} {'95% interval':>16} {'accuracy':>9}   "
            f"({n} partition(s) x {m} test clips, {report.protocol})")
    rows = [head]
    for score in (report.network, report.baseline):
        if score is None:
            continue
        e, h = score.error, score.half_width
        rows.append(f"{score.name:<10} {e:>7.3f} {f'+- {h:.3f}':>16} {1 - e:>9.1%}")
    cm = report.network.mean_confusion()
    names = [c[:8] for c in report.class_names]
    rows.append("mean confusion (convnet; rows true, columns predicted, clips):")
    rows.append(" " * 10 + "".join(f"{c:>9}" for c in names))
    for name, row in zip(names, cm):
        rows.append(f"{name:<10}" + "".join(f"{v:>9.1f}" for v in row))
    return "\n".join(rows)
