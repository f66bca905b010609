"""`genrecnn features`: precompute and cache the features of a dataset folder,
or write them into a feature store (``--store``).

Training and evaluation read features from the same cache, so running this
once (in parallel, with a progress bar) makes every later run start at once.
A store holds every clip at full length in memory-mappable shards, for
collections larger than memory; under ``mpirun`` the files are split over ranks.
Since caching is the point, a cache that stopped accepting entries (a full
disk) ends the command with an error naming how many were not kept.
"""
from __future__ import annotations

import time

import click

from genrecnn.errors import DataError
from genrecnn.fsutil import json_text


@click.command()
@click.argument("data", type=click.Path(file_okay=False, path_type=str))
@click.option("--genres", default=None, metavar="A,B",
              help="Only these genre folders (comma-separated); default all.")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
              help="Feature cache folder (default $GENRECNN_CACHE or ~/.cache/genrecnn).")
@click.option("--jobs", "-j", default=None, type=int,
              help="Worker processes (default and most: the CPU cores this process may use).")
@click.option("--strict", is_flag=True, help="Fail on the first unusable file instead of "
              "skipping it.")
@click.option("--store", default=None, type=click.Path(path_type=str),
              help="Write every clip at full length into this feature store (created or "
              "updated: only new files are extracted).")
@click.option("--shard-mb", default=1024, type=int, show_default=True,
              help="With --store: close a shard file at about this many MiB.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def features(data, genres, cache_dir, jobs, strict, store, shard_mb, as_json, quiet):
    """Compute the mel-spectrogram features of every clip under DATA/<genre>/ and cache them.

    Prints clips per second, cache hits and the files that were skipped (with
    why). A second run reads the cache. With --store, the features go into a
    store (see README, "Feature stores"); `mpirun -n N genrecnn features DATA
    --store STORE` splits the files over N processes.
    """
    from genrecnn.music.features import FeatureCache
    from genrecnn.music.loading import load_dataset
    from genrecnn.music.workers import usable_cores

    if jobs is not None and jobs < 1:
        raise DataError(f"--jobs {jobs}: give at least 1 worker process")
    if jobs is not None and jobs > usable_cores():
        click.echo(f"note: --jobs {jobs}: this process may use {usable_cores()} core(s); "
                   f"using {usable_cores()} worker(s)", err=True)
        jobs = usable_cores()
    cache = FeatureCache(cache_dir)
    cache.check_writable()        # caching is the point: refuse a folder that would hold nothing
    if store is not None:
        return _to_store(data, store, genres, cache, jobs, strict, shard_mb, as_json, quiet)
    start = time.perf_counter()
    ds = load_dataset(data, genres=genres, strict=strict, cache=cache, jobs=jobs,
                      progress=not (quiet or as_json))
    seconds = time.perf_counter() - start
    n_files = len(ds.clip_ids) + len(ds.skipped)
    summary = {
        "data": str(data), "clips": len(ds.clip_ids), "genres": ds.class_names,
        "frames": int(ds.x.shape[2]), "n_mels": int(ds.x.shape[1]), "seconds": round(seconds, 3),
        "clips_per_s": round(n_files / seconds, 2) if seconds > 0 else None,
        "cache_dir": str(cache.root), "cache_hits": cache.hits, "cache_misses": cache.misses,
        "cache_repaired": cache.repaired, "cache_unwritten": cache.unwritten,
        "skipped": [{"path": p, "reason": r} for p, r in ds.skipped],
    }
    if as_json:
        click.echo(json_text(summary))
    else:
        _report(ds, cache, n_files, seconds, summary["clips_per_s"])
    if cache.unwritten:
        raise DataError(f"{cache.unwritten_note}, then run features again")


def _report(ds, cache, n_files: int, seconds: float, rate) -> None:
    click.echo(f"{len(ds.clip_ids)} clips of {len(ds.class_names)} genres "
               f"({', '.join(ds.class_names)}) -> {ds.x.shape[1]} x {ds.x.shape[2]} features")
    click.echo(f"{n_files} files in {seconds:.1f} s ({rate} clips/s); cache "
               f"{cache.root}: {cache.hits} hits, {cache.misses} computed")
    if cache.repair_note:
        click.echo(f"note: {cache.repair_note}")
    if ds.skipped:
        click.echo(f"skipped {len(ds.skipped)} file{'s' if len(ds.skipped) != 1 else ''}:")
        for path, reason in ds.skipped:
            click.echo(f"  {path}: {reason}")


def _to_store(data, store, genres, cache, jobs, strict, shard_mb, as_json, quiet):
    """features --store: build or update the store; rank 0 alone reports (under mpirun
    the other ranks end silently, with the same exit status)."""
    from genrecnn.music.store_build import build_store
    from genrecnn.music.store_ranks import on_every_rank
    from genrecnn.world import world

    if shard_mb < 1:
        raise DataError(f"--shard-mb {shard_mb}: give at least 1 (MiB)")
    w = world()
    summary = on_every_rank(w, build_store, data, store, genres=genres, cache=cache, jobs=jobs,
                            progress=not (quiet or as_json), shard_bytes=shard_mb << 20, world=w)
    if not w.is_root:
        return
    if as_json:
        click.echo(json_text(summary))
    else:
        _print_store_summary(summary)
    if strict and summary["skipped"]:
        first = summary["skipped"][0]
        more = len(summary["skipped"]) - 1
        raise DataError(f"{first['path']}: {first['reason']}{f' (and {more} more)' if more else ''}"
                        f"; the store keeps the {summary['clips']} usable clips")


def _print_store_summary(s: dict) -> None:
    click.echo(f"store {s['store']}: {s['clips']} clips of {len(s['genres'])} genres "
               f"({', '.join(s['genres'])}) in {s['shards']} shard"
               f"{'s' if s['shards'] != 1 else ''}, {s['bytes'] / 2**20:.1f} MiB")
    click.echo(f"{s['added']} added, {s['kept']} kept, {s['dropped']} dropped; "
               f"{s['extracted']} files extracted in {s['seconds']:.1f} s over {s['ranks']} "
               f"process{'es' if s['ranks'] != 1 else ''}")
    if s["repaired"]:
        click.echo(f"re-extracted the clips of damaged shards: {', '.join(s['repaired'])}")
    if s["skipped"]:
        click.echo(f"skipped {len(s['skipped'])} file{'s' if len(s['skipped']) != 1 else ''}:")
        for item in s["skipped"]:
            click.echo(f"  {item['path']}: {item['reason']}")
