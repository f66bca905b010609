"""`genrecnn synth`: write a corpus of the synthetic genres, as a feature store or audio files.

For testing at scale where no large real collection is at hand: a store of
50,000 clips of 30 s takes minutes on two cores (the features are drawn in the
mel domain), and ``--audio`` writes WAV files for the whole audio path.
"""
from __future__ import annotations

import click

from genrecnn.errors import DataError
from genrecnn.fsutil import json_text


@click.command()
@click.argument("out", type=click.Path(path_type=str))
@click.option("--clips", default=1000, show_default=True, type=int, help="Number of clips.")
@click.option("--seconds", default=30.0, show_default=True, type=float,
              help="Length of each clip.")
@click.option("--classes", default=4, show_default=True, type=int,
              help="Number of synthetic genres (pulse, drone, chime, swing, ...).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="The same seed gives the same corpus.")
@click.option("--jobs", "-j", default=None, type=int,
              help="Worker processes (default: the CPU cores, shared among MPI ranks).")
@click.option("--audio", is_flag=True, help="Write WAV files in genre folders instead of a "
              "store (about 100x slower).")
@click.option("--shard-mb", default=1024, type=int, show_default=True,
              help="Close a shard file at about this many MiB.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def synth(out, clips, seconds, classes, seed, jobs, audio, shard_mb, as_json, quiet):
    """Write CLIPS synthetic clips into OUT, a new feature store (or genre folders of WAV
    files with --audio). Runs under `mpirun -n N` too, each rank writing its share."""
    from genrecnn.music.store_ranks import on_every_rank
    from genrecnn.music.store_synth import synth_corpus
    from genrecnn.world import world

    if jobs is not None and jobs < 1:
        raise DataError(f"--jobs {jobs}: give at least 1 worker process")
    if shard_mb < 1:
        raise DataError(f"--shard-mb {shard_mb}: give at least 1 (MiB)")
    w = world()
    summary = on_every_rank(w, synth_corpus, out, clips, seconds, classes, seed, jobs, audio,
                            progress=not (quiet or as_json), shard_bytes=shard_mb << 20, world=w)
    if not w.is_root:
        return
    if as_json:
        click.echo(json_text(summary))
        return
    rate = summary["clips"] / summary["elapsed"] * 60 if summary["elapsed"] > 0 else 0
    click.echo(f"{summary['clips']} clips of {seconds:g} s ({', '.join(summary['classes'])}) "
               f"-> {summary['format']} {out} in {summary['elapsed']:.1f} s ({rate:,.0f} "
               f"clips/min, {summary['ranks']} x {summary['jobs']} processes)")
