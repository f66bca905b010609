"""`genrecnn synth`: a corpus of the synthetic genres on disk, as a store or as audio files.

Clip ``i`` of the corpus is class ``i mod classes``, number ``i // classes`` of
its class, drawn from its own random stream ``(seed, class, number)``: the corpus
is the same whatever the number of worker processes or MPI ranks, and a larger
corpus extends a smaller one. As a store the features are drawn directly in the
mel domain (``synth_mel``); with ``audio`` the clips are synthesised as WAV files
in genre folders (``synthetic``), ~100x slower, for the whole audio path.
Work is split into chunks of about one shard each, over worker processes, and
over ranks under ``mpirun`` (rank 0 merges the index).
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from genrecnn.errors import DataError
from genrecnn.fsutil import folder_lock, writable_folder
from genrecnn.music.features import MIN_FRAMES, FeatureParams
from genrecnn.music.store_ranks import root_step, together
from genrecnn.music.store_write import (DEFAULT_SHARD_BYTES, ShardSeries, shard_prefix,
                                        write_index)
from genrecnn.music.synth_mel import MEL_CLASSES, mel_clip
from genrecnn.music.synthetic import CLASS_NAMES


def corpus_classes(classes: int, audio: bool) -> list[str]:
    """The class names of a corpus of ``classes`` classes, or DataError."""
    recipes = CLASS_NAMES if audio else MEL_CLASSES
    if not 2 <= classes <= len(recipes):
        raise DataError(f"--classes {classes}: the synthetic {'audio' if audio else 'store'} "
                        f"corpus has 2 to {len(recipes)} classes ({', '.join(recipes)})")
    return sorted(recipes[:classes])


def clip_of(i: int, names: list[str], seed: int) -> tuple[str, int, str, np.random.Generator]:
    """(class, label, clip id, random stream) of clip ``i`` of the corpus."""
    label = i % len(names)
    name, number = names[label], i // len(names)
    rng = np.random.default_rng([seed, CLASS_NAMES.index(name), number])
    return name, label, f"{name}/{name}.{number:06d}", rng


def _store_chunk(start, stop, k, *, out, names, frames, seed, params, rank, max_bytes):
    """Clips ``start:stop`` drawn into chunk ``k``'s shards: (index rows, shard entries)."""
    series = ShardSeries(out, shard_prefix(1, rank, k), params.n_mels, max_bytes)
    rows = []
    try:
        for i in range(start, stop):
            name, label, cid, rng = clip_of(i, names, seed)
            shard, offset = series.add(mel_clip(name, frames, rng, params))
            rows.append({"id": cid, "genre": name, "label": label, "frames": frames,
                         "shard": shard, "offset": offset, "source": None, "hash": None})
        return rows, series.close()
    except BaseException:
        series.abort()
        raise


def _audio_chunk(start, stop, k, *, out, names, seconds, seed, params):
    """Clips ``start:stop`` synthesised as WAV files in genre folders: (no rows, no shards)."""
    import soundfile as sf

    from genrecnn.music.synthetic import synth_clip

    for i in range(start, stop):
        name, _, cid, rng = clip_of(i, names, seed)
        target = Path(out) / f"{cid}.wav"
        target.parent.mkdir(exist_ok=True)
        sf.write(target, synth_clip(name, seconds, params.sr, rng), params.sr, subtype="PCM_16")
    return [], []


def _run_chunks(work, chunks: list[tuple[int, int]], jobs: int, progress: bool):
    """``work(start, stop, k)`` of every chunk over ``jobs`` processes: rows and shards."""
    from tqdm import tqdm

    rows, shards = [], []
    bar = tqdm(total=sum(b - a for a, b in chunks), desc="synth", unit="clip",
               disable=not progress, dynamic_ncols=True)

    def take(result, n):
        rows.extend(result[0])
        shards.extend(result[1])
        bar.update(n)

    try:
        if jobs == 1 or len(chunks) <= 1:
            for k, (a, b) in enumerate(chunks):
                take(work(a, b, k), b - a)
        else:
            with ProcessPoolExecutor(max_workers=min(jobs, len(chunks))) as pool:
                futures = {pool.submit(work, a, b, k): b - a for k, (a, b) in enumerate(chunks)}
                for fut in as_completed(futures):
                    take(fut.result(), futures[fut])
    finally:
        bar.close()
    return rows, shards


def _chunks(share: slice, per_chunk: int) -> list[tuple[int, int]]:
    return [(a, min(a + per_chunk, share.stop)) for a in range(share.start, share.stop, per_chunk)]


def _prepare(out: Path, lock: ExitStack) -> None:
    """Rank 0: a new or empty OUT folder, locked for the run."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists and is not an empty folder; choose a new OUT "
                        f"(synth does not add to an existing corpus)")
    writable_folder(out, "output folder", "choose another OUT")
    lock.enter_context(folder_lock(out, "OUT"))


def synth_corpus(out, clips: int, seconds: float, classes: int = 4, seed: int = 0,
                 jobs: int | None = None, audio: bool = False, progress: bool = True,
                 shard_bytes: int = DEFAULT_SHARD_BYTES, params: FeatureParams = FeatureParams(),
                 world=None) -> dict:
    """Write ``clips`` synthetic clips of ``seconds`` into ``out`` (a store, or WAV files
    in genre folders with ``audio``); a summary. Under MPI every rank calls this."""
    from functools import partial

    from genrecnn.world import world as current_world

    world = world or current_world()
    out = Path(out)
    names = corpus_classes(classes, audio)
    frames = params.frames_for(int(seconds * params.sr))
    if clips < 1 or seconds * params.sr < params.n_fft or frames < MIN_FRAMES:
        raise DataError(f"--clips {clips} --seconds {seconds}: give at least 1 clip of at least "
                        f"0.5 s")
    jobs = jobs or max(1, (os.cpu_count() or 1) // world.local_size)
    start = time.perf_counter()
    with ExitStack() as lock:
        root_step(world, _prepare, out, lock)
        if audio:
            work = partial(_audio_chunk, out=out, names=names, seconds=seconds, seed=seed,
                           params=params)
            per_chunk = 16
        else:
            work = partial(_store_chunk, out=out, names=names, frames=frames, seed=seed,
                           params=params, rank=world.rank, max_bytes=shard_bytes)
            per_chunk = max(1, min(shard_bytes // (frames * params.n_mels * 4),
                                   -(-clips // (jobs * world.size))))
        chunks = _chunks(world.share(clips), per_chunk)
        done = together(world, _run_chunks, work, chunks, jobs, progress and world.is_root)
        gathered = world.gather(done)
        if not audio:
            root_step(world, _merge, out, params, names, gathered, seed, seconds)
    return {"out": str(out), "clips": clips, "seconds": seconds, "classes": names,
            "format": "audio" if audio else "store", "frames": frames, "ranks": world.size,
            "jobs": jobs, "elapsed": round(time.perf_counter() - start, 3)}


def _merge(out, params, names, gathered, seed, seconds) -> None:
    """Rank 0: the index of every rank's shards."""
    rows = [r for part, _ in gathered for r in part]
    shards = [s for _, part in gathered for s in part]
    write_index(out, params, names, rows, shards, generation=1,
                origin=f"synth seed={seed} seconds={seconds}")
