"""`features DATA --store STORE`: every clip of a dataset folder into a store, at full length.

Files are found and decoded by the dataset loader's own helpers (scanning,
worker-pool extraction, the feature cache); what is new here is where the
features go: streamed, a few files at a time, into shards, so memory stays
bounded whatever the dataset size. A store is updated in place: files whose
content hash the index already holds are not decoded again (renamed or moved
files keep their features), files gone from DATA leave the index, and shards that
no clip uses any more are deleted. Under ``mpirun`` the files to extract are
split over the ranks, each writing its own shards; rank 0 merges the index.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import ExitStack
from pathlib import Path

from genrecnn.errors import DataError
from genrecnn.fsutil import folder_lock, writable_folder
from genrecnn.music.features import MIN_FRAMES, FeatureParams, file_digest
from genrecnn.music.loading import _scan, _worker
from genrecnn.music.store import map_shard
from genrecnn.music.store_ranks import root_step, together
from genrecnn.music.store_write import (DEFAULT_SHARD_BYTES, ShardSeries, clean_store,
                                        existing_index, shard_prefix, write_index)


def _prepare(store: Path, params: FeatureParams, lock: ExitStack) -> dict:
    """Rank 0: lock the store, check it against ``params``, clear a killed run's leftovers.
    What the other ranks need: known content hashes and the next generation. The clips
    of a truncated or missing shard are forgotten, so this run extracts them again."""
    writable_folder(store, "store folder", "choose another --store")
    lock.enter_context(folder_lock(store, "--store"))
    old = existing_index(store, params) or {"clips": [], "shards": [], "generation": 0}
    if str(old.get("origin", "")).startswith("synth"):
        raise DataError(f"{store} holds a synthetic corpus (genrecnn synth), which features "
                        f"would replace; choose another --store")
    damaged = set()
    for s in old["shards"]:
        try:
            map_shard(store / s["name"], s["frames"], s["bytes"], params.n_mels, store)
        except DataError:
            damaged.add(s["name"])
    clips = [c for c in old["clips"] if c["shard"] not in damaged]
    shards = [s for s in old["shards"] if s["name"] not in damaged]
    clean_store(store, {s["name"] for s in shards})
    known = {c["hash"]: {"shard": c["shard"], "offset": c["offset"], "frames": c["frames"]}
             for c in clips if c["hash"]}
    return {"known": known, "shards": shards, "old_ids": [c["id"] for c in old["clips"]],
            "generation": old.get("generation", 0) + 1, "repaired": sorted(damaged)}


def _digests(paths: list[Path]) -> list[str | None]:
    """Content hashes (None for a file that cannot be read: extraction says why)."""
    out = []
    for p in paths:
        try:
            out.append(file_digest(p))
        except OSError:
            out.append(None)
    return out


def _to_extract(digests: list, known: dict) -> list[int]:
    """Indices of the files to decode: one per content hash the store lacks, and every
    unreadable one (so its reason is found)."""
    todo, seen = [], set()
    for i, d in enumerate(digests):
        if d is None or (d not in known and d not in seen):
            todo.append(i)
            seen.add(d)
    return todo


def _stream(paths: list[Path], params, cache_root, jobs: int):
    """(index, features, reason) of each file as workers finish, a bounded number in flight."""
    if jobs == 1 or len(paths) <= 1:
        for i, p in enumerate(paths):
            yield _worker(i, str(p), params, cache_root, MIN_FRAMES)[:3]
        return
    todo = iter(enumerate(paths))
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
        pending = set()
        while True:
            while len(pending) < 2 * jobs:
                nxt = next(todo, None)
                if nxt is None:
                    break
                pending.add(pool.submit(_worker, nxt[0], str(nxt[1]), params, cache_root,
                                        MIN_FRAMES))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()[:3]


def _extract_share(store, files, todo, params, cache_root, jobs, progress, prefix, max_bytes):
    """This rank's share of the files to extract, streamed into its own shards:
    ({file index: location or reason}, shard entries)."""
    from tqdm import tqdm

    series = ShardSeries(store, prefix, params.n_mels, max_bytes)
    results = {}
    bar = tqdm(total=len(todo), desc="features", unit="clip", disable=not progress,
               dynamic_ncols=True)
    try:
        for k, feat, reason in _stream([files[i][0] for i in todo], params, cache_root, jobs):
            if feat is None:
                results[todo[k]] = reason
            else:
                shard, offset = series.add(feat)
                results[todo[k]] = {"shard": shard, "offset": offset, "frames": feat.shape[1]}
            bar.update(1)
        return results, series.close()
    except BaseException:
        series.abort()
        raise
    finally:
        bar.close()


def _rows(root: Path, files, digests, class_names, located: dict) -> tuple[list, list]:
    """Index rows of every usable file, and (path, reason) of the others.

    ``located`` maps a file's content hash (or, unreadable, its index) to its
    features' place in the store, or to why it could not be used."""
    rows, skipped, seen = [], [], {}
    for i, ((path, genre), digest) in enumerate(zip(files, digests)):
        where = located.get(digest if digest is not None else i)
        cid = f"{genre}/{path.stem}"
        if isinstance(where, dict) and cid in seen:
            where = f"has the same clip id {cid!r} as {seen[cid].name}; keep one of the two files"
        if not isinstance(where, dict):
            skipped.append((str(path), where or "could not be read; check the file"))
            continue
        seen[cid] = path
        rows.append({"id": cid, "genre": genre, "label": class_names.index(genre), **where,
                     "source": path.relative_to(root).as_posix(), "hash": digest})
    present = sorted({r["genre"] for r in rows})
    for r in rows:     # a genre whose every file was unusable is not a class of the store
        r["label"] = present.index(r["genre"])
    return rows, skipped


def _merge(store, root, files, digests, prep, gathered, params, class_names) -> dict:
    """Rank 0: the new index from the old one and every rank's results; unused shards go."""
    located = dict(prep["known"])
    shards = list(prep["shards"])
    for results, new_shards in gathered:
        shards += new_shards
        for i, where in results.items():
            located[digests[i] if digests[i] is not None else i] = where
    rows, skipped = _rows(root, files, digests, class_names, located)
    doc = write_index(store, params, sorted({r["genre"] for r in rows}), rows, shards,
                      prep["generation"], origin=f"features {root}")
    clean_store(store, {s["name"] for s in doc["shards"]})
    known, old_ids = set(prep["known"]), set(prep["old_ids"])
    new_ids = {r["id"] for r in rows}
    return {"clips": len(rows), "genres": doc["class_names"],
            "added": sum(r["hash"] not in known for r in rows),
            "kept": sum(r["hash"] in known for r in rows),
            "dropped": len(old_ids - new_ids), "repaired": prep["repaired"],
            "shards": len(doc["shards"]),
            "bytes": sum(s["bytes"] for s in doc["shards"]),
            "skipped": [{"path": p, "reason": r} for p, r in skipped]}


def build_store(data, store, params: FeatureParams = FeatureParams(), genres=None,
                cache=None, jobs: int | None = None, progress: bool = True,
                shard_bytes: int = DEFAULT_SHARD_BYTES, world=None) -> dict:
    """Extract (or update) the store at ``store`` from the genre folders under ``data``;
    a summary: clips, genres, added / kept / dropped, shards, bytes, skipped files.

    ``cache``: a FeatureCache the workers read and fill (None: no cache). Under
    MPI (``world`` of several ranks) every rank calls this with the same arguments.
    """
    from genrecnn.world import world as current_world

    world = world or current_world()
    root, store = Path(data), Path(store)
    if jobs is None:
        jobs = max(1, (os.cpu_count() or 1) // world.local_size)
    start = time.perf_counter()
    class_names, files = _scan(root, genres)
    with ExitStack() as lock:
        prep = root_step(world, _prepare, store, params, lock)
        mine = [p for p, _ in files[world.share(len(files))]]
        digests = [d for part in world.all_gather(_digests(mine)) for d in part]
        todo = _to_extract(digests, prep["known"])
        share = todo[world.share(len(todo))]
        cache_root = str(cache.root) if cache is not None else None
        done = together(world, _extract_share, store, files, share, params, cache_root, jobs,
                        progress and world.is_root, shard_prefix(prep["generation"], world.rank),
                        shard_bytes)
        gathered = world.gather(done)
        summary = root_step(world, _merge, store, root, files, digests, prep, gathered, params,
                            class_names)
    summary.update(store=str(store), data=str(root), extracted=len(todo),
                   seconds=round(time.perf_counter() - start, 3), ranks=world.size)
    return summary
