"""`genrecnn bench`: per-layer forward/backward timings per backend, and transfer costs.

Two modes: a sweep over input sizes (2^LO..2^HI elements) per layer kind, as the
dissertation's Figures 4.10-4.19, or every layer of an architecture at its real
shapes and batch size. Writes CSV files and log-log PNG plots to --out; with
--compare-auto also times whole training steps under the auto plan and under
each single-backend placement (see :mod:`genrecnn.run.bench_job`).
"""
from __future__ import annotations

from pathlib import Path

import click

from genrecnn.cli.options import json_option, precision_option
from genrecnn.engine import bench
from genrecnn.engine.capability import UPDATE_OPS
from genrecnn.engine.layers import KINDS
from genrecnn.engine.ops import DTYPES
from genrecnn.fsutil import json_text
from genrecnn.errors import GenrecnnError

DEFAULT_SIZES = "5:20:3"


def _known_backends(ctx, param, value):
    """The names in --backends, parsed once; names unknown or unavailable here are refused
    while parsing, in words that name this option (the registry's own message points
    at --backend)."""
    if value is None:
        return value
    from genrecnn.engine.registry import registry

    reg = registry()
    available = ", ".join(reg.available_names()) or "none"
    names = [s.strip() for s in value.split(",")]
    for name in names:
        info = reg.infos.get(name)
        if info is None:
            raise GenrecnnError(f"unknown backend {name!r} in --backends; available here: "
                                f"{available} (see `genrecnn backends`)")
        if not info.available:
            raise GenrecnnError(f"backend {name!r} in --backends is not available here "
                                f"({info.reason}); choose among {available}")
    return names


@click.command()
@click.option("--backends", "backend_names", metavar="A,B", callback=_known_backends,
              help="Backends to time (default: every available one).")
@click.option("--arch", metavar="NAME|FILE",
              help="Time this architecture's layers at their real shapes instead of a sweep.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Batch size for --arch and --compare-auto.")
@click.option("--mels", type=click.IntRange(1), default=128, show_default=True,
              help="Input mel bands for --arch.")
@click.option("--frames", type=click.IntRange(1), default=1292, show_default=True,
              help="Input frames for --arch (1292 = a 30 s GTZAN clip).")
@click.option("--sizes", default=DEFAULT_SIZES, show_default=True, metavar="LO:HI[:STEP]",
              help="Sweep input sizes 2^LO..2^HI elements (e.g. 5:24), or a comma list.")
@click.option("--layers", "layers_spec", metavar="K,K",
              help=f"Layer kinds to time (default all: {','.join(KINDS)}).")
@click.option("--reps", type=click.IntRange(1), default=bench.REPS, show_default=True,
              help="Timed repetitions per measurement (after one warm-up).")
@click.option("--budget", type=click.FloatRange(0), default=bench.BUDGET, show_default=True,
              help="Stop repeating a measurement after this many seconds.")
@click.option("--max-call", type=click.FloatRange(0), default=2.0, show_default=True,
              help="Sweep: skip larger sizes on a backend once one call takes longer (s).")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True)
@precision_option
@click.option("--optimizer", type=click.Choice(sorted(UPDATE_OPS)), default="adam",
              show_default=True, help="Update timed with --arch and --compare-auto.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="runs/bench",
              show_default=True, help="Folder for the CSV files and PNG plots.")
@click.option("--compare-auto", is_flag=True,
              help="Time full training steps under --backend auto and every single backend "
                   "(with --arch, default small).")
@json_option
def bench_cmd(backend_names, arch, batch_size, mels, frames, sizes, layers_spec, reps, budget,
              max_call, dtype, precision, optimizer, out_dir, compare_auto, as_json):
    """Time each layer's forward and backward per backend, and transfers between them."""
    from tqdm import tqdm

    from genrecnn.engine.registry import registry
    from genrecnn.run import bench_job

    backends = bench_job.pick_backends(registry(), backend_names)
    kinds = bench_job.pick_kinds(layers_spec, KINDS)
    out = Path(out_dir)
    say = (lambda *a, **k: None) if as_json else click.echo
    if compare_auto:
        result = bench_job.compare_auto(backends, arch or "small", batch_size, mels, frames,
                                        dtype, optimizer, reps, out, say, precision)
        if as_json:
            click.echo(json_text(result))
        return
    bar = tqdm(desc="bench", unit="meas", leave=False, disable=None)

    def progress(what: str) -> None:
        bar.set_postfix_str(what, refresh=False)
        bar.update(1)

    try:
        result = bench_job.run_bench(
            backends, kinds, arch=arch, batch_size=batch_size, mels=mels, frames=frames,
            sizes=sizes, reps=reps, budget=budget, max_call=max_call, dtype=dtype,
            optimizer=optimizer, out=out, echo=say, progress=progress, precision=precision)
    finally:
        bar.close()
    if as_json:
        click.echo(json_text({k: result[k] for k in ("layers", "transfers", "skipped", "files")}))
        return
    for line in bench_job.table_layers(result["layers"], result["key"]):
        say(line)
    if result["transfers"]:
        say("")
        for line in bench_job.table_transfers(result["transfers"]):
            say(line)
    for s in result["skipped"]:
        say(f"skipped: {s}")
    say(f"wrote {', '.join(result['files'])}")
