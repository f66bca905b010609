"""Reading a feature store: clips of any length, memory-mapped from a few large shards.

A store is a folder of float32 ``.npy`` shards, each [total_frames, n_mels]
(time-major: clips concatenated along time, so one crop of a clip is one
contiguous run of bytes), and one strict-JSON index naming every clip's shard,
offset and length. Both load without running code (``np.load(mmap_mode="r",
allow_pickle=False)``, ``json``), and the reader checks every field on open, so a
damaged or truncated store is one clear error instead of wrong features later.
Files the index does not name (``.part`` shards of a killed run, shards written
after the last index) are ignored here and removed by the next writer.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genrecnn.errors import DataError
from genrecnn.music.clip_readers import NPY_READ_ERRORS
from genrecnn.music.features import FeatureParams

INDEX_NAME = "index.json"
STORE_FORMAT = "genrecnn-feature-store"
STORE_VERSION = 1
# numpy's v1.0 .npy header for a 2-D float32 array, padded to 64 bytes, is this long
# for any shape whose numbers fit in 40 digits together
HEADER_BYTES = 128
CLIP_FIELDS = ("id", "genre", "label", "frames", "shard", "offset", "source", "hash")


def rebuild_hint(path) -> str:
    """What to do about a damaged shard: an update re-extracts the clips it held."""
    return f"re-run `genrecnn features DATA --store {path}` to re-extract its clips"


def index_hint(path) -> str:
    return (f"delete {Path(path) / INDEX_NAME} and re-run `genrecnn features DATA --store "
            f"{path}` to rebuild the store")


def is_store(path) -> bool:
    """True when ``path`` is a folder holding a genrecnn store index (checked on open)."""
    index = Path(path) / INDEX_NAME
    if not index.is_file():
        return False
    try:
        with open(index, "rb") as fh:
            return STORE_FORMAT.encode() in fh.read(4096)
    except OSError:
        return False


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def read_index(path) -> dict:
    """The store's index, checked field by field, or DataError naming the problem."""
    path = Path(path)
    index = path / INDEX_NAME
    if not index.is_file():
        raise DataError(f"{path} is not a feature store (no {INDEX_NAME}); make one with "
                        f"`genrecnn features DATA --store {path}`")
    try:
        doc = json.loads(index.read_text(), parse_constant=_reject_constant)
    except (OSError, ValueError) as exc:
        raise DataError(f"{index} is damaged ({str(exc)[:80]}); {index_hint(path)}") from None
    problem = _index_problem(doc)
    if problem:
        raise DataError(f"{index} is damaged ({problem}); {index_hint(path)}")
    return doc


def _index_problem(doc) -> str | None:
    """What is wrong with a parsed index (None when nothing is)."""
    if not isinstance(doc, dict) or doc.get("format") != STORE_FORMAT:
        return f"not a {STORE_FORMAT} index"
    if doc.get("version") != STORE_VERSION:
        return f"version {doc.get('version')!r}, this genrecnn reads {STORE_VERSION}"
    try:
        FeatureParams.from_dict(doc["params"])
    except (KeyError, TypeError, DataError) as exc:
        return f"feature parameters: {exc}"
    names, clips, shards = doc.get("class_names"), doc.get("clips"), doc.get("shards")
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        return "class_names is not a list of names"
    if not isinstance(shards, list) or not all(
            isinstance(s, dict) and isinstance(s.get("name"), str) and "/" not in s["name"]
            and _count(s.get("frames")) and _count(s.get("bytes")) for s in shards):
        return "shards is not a list of {name, frames, bytes}"
    if not isinstance(clips, list):
        return "clips is not a list"
    return _clips_problem(clips, len(names), {s["name"]: s["frames"] for s in shards})


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _clips_problem(clips, n_classes: int, shard_frames: dict) -> str | None:
    ids = set()
    for k, c in enumerate(clips):
        if not isinstance(c, dict) or set(c) != set(CLIP_FIELDS):
            return f"clip {k} does not have exactly the fields {', '.join(CLIP_FIELDS)}"
        if not (isinstance(c["id"], str) and isinstance(c["genre"], str)
                and _count(c["label"]) and c["label"] < n_classes
                and _count(c["frames"]) and c["frames"] > 0 and _count(c["offset"])
                and isinstance(c["shard"], str)
                and all(c[f] is None or isinstance(c[f], str) for f in ("source", "hash"))):
            return f"clip {k} ({c.get('id')!r}) has a field of the wrong type or range"
        if c["shard"] not in shard_frames:
            return f"clip {c['id']!r} names shard {c['shard']!r}, which the index does not list"
        if c["offset"] + c["frames"] > shard_frames[c["shard"]]:
            return f"clip {c['id']!r} runs past the end of shard {c['shard']}"
        if c["id"] in ids:
            return f"clip id {c['id']!r} appears twice"
        ids.add(c["id"])
    return None


def shard_bytes(frames: int, n_mels: int) -> int:
    """Size on disk of a complete shard of ``frames`` frames."""
    return HEADER_BYTES + frames * n_mels * 4


def map_shard(path: Path, frames: int, n_bytes: int, n_mels: int, store) -> np.ndarray:
    """One shard memory-mapped read-only and checked against the index, or DataError."""
    want = shard_bytes(frames, n_mels)
    if n_bytes != want:
        raise DataError(f"{Path(store) / INDEX_NAME} is damaged (shard {path.name}: {n_bytes} "
                        f"bytes listed for {frames} frames); {index_hint(store)}")
    try:
        size = path.stat().st_size
    except OSError:
        raise DataError(f"shard {path.name} of store {store} is missing; "
                        f"{rebuild_hint(store)}") from None
    if size != want:
        raise DataError(f"shard {path.name} of store {store} is truncated or damaged ({size} "
                        f"bytes, the index says {want}); {rebuild_hint(store)}")
    if frames == 0:
        return np.zeros((0, n_mels), np.float32)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except NPY_READ_ERRORS as exc:
        raise DataError(f"shard {path.name} of store {store} cannot be read ({str(exc)[:60]}); "
                        f"{rebuild_hint(store)}") from None
    if arr.dtype != np.float32 or arr.shape != (frames, n_mels) or arr.offset != HEADER_BYTES:
        raise DataError(f"shard {path.name} of store {store} holds {arr.dtype} {arr.shape}, "
                        f"the index says float32 ({frames}, {n_mels}); {rebuild_hint(store)}")
    return arr


def select_genres(genres, existing: list[str], where) -> list[str]:
    """The genre names a ``genres`` option ("a,b" or a list) picks out of ``existing``."""
    if isinstance(genres, str):
        genres = genres.split(",")
    names = sorted({g.strip() for g in genres if g.strip()})
    unknown = [g for g in names if g not in existing]
    if unknown:
        raise DataError(f"unknown genre{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                        f"in {where}; existing genres: {', '.join(existing) or '(none)'}")
    if len(names) < 2:
        raise DataError(f"{len(names)} genre{'s' if len(names) != 1 else ''} selected in "
                        f"{where}; a classifier needs at least two")
    return names


class FeatureStore:
    """The clips of one store (or a subset of them), their features mapped from disk.

    ``labels`` index ``class_names``; ``frames`` is each clip's own length.
    Nothing is read until a clip or crop is asked for.
    """

    def __init__(self, path: Path, params: FeatureParams, class_names: list[str],
                 clip_ids: list[str], labels, frames, shard_of, offsets, maps: list):
        self.path, self.params, self.class_names = path, params, list(class_names)
        self.clip_ids = list(clip_ids)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.frames = np.asarray(frames, dtype=np.int64)
        self._shard = np.asarray(shard_of, dtype=np.int64)
        self._offset = np.asarray(offsets, dtype=np.int64)
        self._maps = maps
        self.n_mels = params.n_mels

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __repr__(self):
        return (f"FeatureStore({str(self.path)!r}, {len(self)} clips, "
                f"{len(self.class_names)} classes)")

    def _rows(self, i: int) -> np.ndarray:
        """Clip ``i``'s frames as [frames_i, n_mels] rows of its shard's map."""
        o = self._offset[i]
        return self._maps[self._shard[i]][o:o + self.frames[i]]

    def clip(self, i) -> np.ndarray:
        """Clip ``i``'s features [n_mels, frames_i] float32: a transposed view of the map."""
        return self._rows(int(i)).T

    def take_crops(self, index, start, width: int, out=None) -> np.ndarray:
        """[B, n_mels, width] crops: clip ``index[b]``, frames ``start[b]:start[b]+width``
        (the caller keeps them inside the clip), one contiguous read each, written into
        ``out`` (e.g. a page-locked float64 staging buffer) when given."""
        index, start = np.asarray(index), np.asarray(start)
        if out is None:
            out = np.empty((len(index), self.n_mels, width), np.float32)
        for b, (i, s) in enumerate(zip(index, start)):
            o = self._offset[i] + s
            out[b] = self._maps[self._shard[i]][o:o + width].T
        return out

    def subset(self, rows) -> "FeatureStore":
        """The clips at ``rows`` (e.g. one split), sharing this store's maps and labels."""
        rows = np.asarray(rows, dtype=np.int64)
        return FeatureStore(self.path, self.params, self.class_names,
                            [self.clip_ids[r] for r in rows], self.labels[rows],
                            self.frames[rows], self._shard[rows], self._offset[rows], self._maps)


def open_store(path, genres=None) -> FeatureStore:
    """The store at ``path`` (every clip, or those of ``genres``: "a,b" or a list, whose
    labels are then renumbered in sorted order), checked against its index."""
    path = Path(path)
    doc = read_index(path)
    params = FeatureParams.from_dict(doc["params"])
    names = doc["class_names"]
    clips = doc["clips"]
    if genres is not None:
        keep = select_genres(genres, names, path)
        clips = [c for c in clips if names[c["label"]] in keep]
        relabel = {names.index(g): k for k, g in enumerate(keep)}
        names = keep
    else:
        relabel = {k: k for k in range(len(names))}
    shard_no = {s["name"]: k for k, s in enumerate(doc["shards"])}
    maps = [map_shard(path / s["name"], s["frames"], s["bytes"], params.n_mels, path)
            for s in doc["shards"]]
    return FeatureStore(path, params, names, [c["id"] for c in clips],
                        [relabel[c["label"]] for c in clips], [c["frames"] for c in clips],
                        [shard_no[c["shard"]] for c in clips], [c["offset"] for c in clips],
                        maps)
