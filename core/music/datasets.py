"""Datasets: folders of genre folders -> fixed-size feature arrays, splits by clip.

A dataset root holds one folder per genre (the GTZAN layout,
``root/<genre>/<clip>.<ext>``). Clips of different lengths become items of one
size either by centre crop/pad to ``frames`` or by cutting them into windows
(each window an item, ``Dataset.clip`` says whose; the clip's answer is the
vote of its windows). Splits work on clips, so windows of one clip never
straddle train and test.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genrecnn.errors import DataError
from genrecnn.music.features import (MIN_FRAMES, SUPPORTED_EXTENSIONS, FeatureCache, FeatureParams, Unusable,
                       _load, fit_length)
from genrecnn.music.normalize import BandNormalizer

__all__ = ["Dataset", "load_dataset", "stratified_split", "split_from_dir", "SplitIndices",
           "BandNormalizer", "fit_length", "synthetic_dataset", "window_starts"]


@dataclass
class Dataset:
    """Items ready for a network: ``x[i]`` is [n_mels, frames], ``y[i]`` its class index."""

    x: np.ndarray                    # float32 [n_items, n_mels, frames]
    y: np.ndarray                    # int64 [n_items]
    clip: np.ndarray                 # int64 [n_items] index into clip_ids
    clip_ids: list[str]              # "genre/stem", one per clip
    class_names: list[str]           # sorted genre names
    params: FeatureParams
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int]:
        return (int(self.x.shape[1]), int(self.x.shape[2]))

    def clip_labels(self) -> np.ndarray:
        """int64 [n_clips] class of each clip."""
        labels = np.full(len(self.clip_ids), -1, dtype=np.int64)
        labels[self.clip] = self.y
        return labels

    def subset(self, idx) -> "Dataset":
        """The items ``idx`` (clip ids and class names kept whole, so indices stay valid)."""
        idx = np.asarray(idx, dtype=np.int64)
        return Dataset(self.x[idx], self.y[idx], self.clip[idx], self.clip_ids, self.class_names,
                       self.params, self.skipped)


def window_starts(n_frames: int, window: int, hop: int) -> list[int]:
    """Start frames of the windows cut from a clip: every ``hop`` frames while a whole
    window fits (a tail shorter than ``hop`` is dropped)."""
    return list(range(0, n_frames - window + 1, hop))


def _scan(root: Path, genres) -> tuple[list[str], list[tuple[Path, str]]]:
    """(class names, [(file, class name)]) of a dataset folder, or DataError."""
    if not root.exists():
        raise DataError(f"dataset folder {root} does not exist; pass a folder of genre folders "
                        f"(<root>/<genre>/<clip files>)")
    if not root.is_dir():
        raise DataError(f"dataset path {root} is a file, not a folder; pass a folder of genre "
                        f"folders (<root>/<genre>/<clip files>)")
    existing = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if genres is not None:
        if isinstance(genres, str):
            genres = [g for g in genres.split(",")]
        genres = [g.strip() for g in genres if g.strip()]
        unknown = [g for g in genres if g not in existing]
        if unknown:
            raise DataError(f"unknown genre{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(unknown)} in {root}; existing genres: "
                            f"{', '.join(existing) or '(none)'}")
        names = sorted(set(genres))
    else:
        names = existing
    if len(names) < 2:
        raise DataError(f"{root} has {len(names)} genre folder{'s' if len(names) != 1 else ''}"
                        f"{' (' + ', '.join(names) + ')' if names else ''}"
                        f"{' selected' if genres is not None else ''}; a classifier needs at "
                        f"least two (<root>/<genre>/<clip files>)")
    files = []
    for name in names:
        found = sorted(p for p in (root / name).iterdir()
                       if p.suffix.lower() in SUPPORTED_EXTENSIONS and not p.name.startswith("."))
        if not found:
            raise DataError(f"genre folder {root / name} has no audio, .png or .npy files; add "
                            f"clips or remove the folder")
        files.extend((p, name) for p in found)
    return names, files


def _worker(index: int, path: str, params: FeatureParams, cache_root, min_frames: int):
    """One file in a worker process: (index, features or None, reason or None, cache hit)."""
    cache = FeatureCache(cache_root) if cache_root is not None else None
    try:
        feat, hit = _load(Path(path), params, cache, min_frames)
    except Unusable as exc:
        return index, None, str(exc), None
    return index, feat, None, hit


def _extract(files: list[Path], params, cache: FeatureCache | None, jobs: int, progress: bool,
             min_frames: int) -> list[tuple[np.ndarray | None, str | None]]:
    """Features of every file, over ``jobs`` processes, with a progress bar."""
    from tqdm import tqdm

    results: list = [None] * len(files)
    root = str(cache.root) if cache is not None else None
    bar = tqdm(total=len(files), desc="features", unit="clip", disable=not progress,
               dynamic_ncols=True)
    lookups = Counter()

    def take(res):
        index, feat, reason, hit = res
        results[index] = (feat, reason)
        lookups[hit] += 1
        bar.update(1)

    try:
        if jobs == 1 or len(files) <= 1:
            for i, p in enumerate(files):
                take(_worker(i, str(p), params, root, min_frames))
        else:
            with ProcessPoolExecutor(max_workers=min(jobs, len(files))) as pool:
                futures = [pool.submit(_worker, i, str(p), params, root, min_frames)
                           for i, p in enumerate(files)]
                for fut in as_completed(futures):
                    take(fut.result())
    finally:
        bar.close()
    if cache is not None:
        cache.hits += lookups[True]
        cache.misses += lookups[False]
    return results


def load_dataset(root, params: FeatureParams = FeatureParams(), genres=None, frames=None,
                 windows=None, strict=False, cache=None, jobs=None, progress=True,
                 window_hop=None, min_frames=None) -> Dataset:
    """Features of every clip under ``root/<genre>/`` as a :class:`Dataset`.

    - ``genres``: a subset (list or "a,b" string); default every genre folder.
    - ``frames``: centre crop/pad each clip to this many frames (default: the
      shortest usable clip's length).
    - ``windows``: cut each clip (after ``frames``, when given) into windows of
      this many frames, every ``window_hop`` frames (default ``windows // 2``,
      i.e. half-overlapping); each window is an item.
    - ``min_frames``: clips shorter than this are skipped as too short. Default:
      one window; else half of ``frames`` (at most half a clip is padding); else
      half the median clip length (one truncated file must not shrink every
      clip). Never below ``MIN_FRAMES``.
    - ``cache``: a FeatureCache; None uses the default one ($GENRECNN_CACHE or
      ~/.cache/genrecnn); False computes without caching.
    - ``jobs``: worker processes (default os.cpu_count()).
    - ``strict``: any unusable file raises DataError instead of being skipped and
      listed in ``Dataset.skipped``.
    """
    root = Path(root)
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise DataError(f"jobs={jobs} must be at least 1")
    for name, value in (("frames", frames), ("windows", windows), ("window_hop", window_hop),
                        ("min_frames", min_frames)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise DataError(f"{name}={value!r} must be a positive integer")
    if frames and windows and windows > frames:
        raise DataError(f"windows={windows} is longer than frames={frames}; use windows no "
                        f"longer than the clips")
    if cache is None:
        cache = FeatureCache()
    elif cache is False:
        cache = None
    class_names, files = _scan(root, genres)
    floor = max(MIN_FRAMES, windows or 0)
    results = _extract([p for p, _ in files], params, cache, jobs, progress, floor)

    skipped: list[tuple[str, str]] = []
    good: list[tuple[str, int, np.ndarray]] = []     # (clip id, class, features)
    seen: dict[str, Path] = {}
    for (path, genre), (feat, reason) in zip(files, results):
        cid = f"{genre}/{path.stem}"
        if reason is None and cid in seen:
            reason = (f"has the same clip id {cid!r} as {seen[cid].name}; keep one of the two "
                      f"files")
        if reason is not None:
            skipped.append((str(path), reason))
            continue
        seen[cid] = path
        good.append((cid, class_names.index(genre), feat))

    if good:
        lengths = np.array([f.shape[1] for _, _, f in good])
        need = min_frames or (windows or (math.ceil(frames / 2) if frames else
                                          math.ceil(float(np.median(lengths)) / 2)))
        need = max(need, MIN_FRAMES, windows or 0)
        keep = []
        for item, n in zip(good, lengths):
            if n < need:
                path = seen[item[0]]
                skipped.append((str(path), f"is too short: {n} frames, at least {need} needed "
                                           f"(~{need * params.hop_length / params.sr:.2f} s); "
                                           f"use longer clips or remove it"))
            else:
                keep.append(item)
        good = keep

    if strict and skipped:
        path, reason = skipped[0]
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise DataError(f"{path}: {reason}{more}")
    present = Counter(c for _, c, _ in good)
    for k, name in enumerate(class_names):
        if present[k] == 0:
            why = [r for p, r in skipped if Path(p).parent.name == name][:1]
            raise DataError(f"genre folder {root / name} has no usable files (all skipped"
                            f"{', e.g. ' + why[0] if why else ''}); fix or replace its clips")

    frames = frames or min(f.shape[1] for _, _, f in good)
    xs, ys, clips, clip_ids = [], [], [], []
    for c, (cid, label, feat) in enumerate(good):
        feat = fit_length(feat, frames)
        clip_ids.append(cid)
        if windows:
            hop = window_hop or max(windows // 2, 1)
            for s in window_starts(feat.shape[1], windows, hop):
                xs.append(feat[:, s:s + windows])
                ys.append(label)
                clips.append(c)
        else:
            xs.append(feat)
            ys.append(label)
            clips.append(c)
    x = np.stack(xs).astype(np.float32, copy=False)
    return Dataset(x, np.array(ys, dtype=np.int64), np.array(clips, dtype=np.int64), clip_ids,
                   class_names, params, skipped)


def _check_fraction(name, value):
    if not 0.0 <= value < 1.0:
        raise DataError(f"{name}={value} must lie in [0, 1)")


def stratified_split(ds: Dataset, test_fraction: float = 0.2, valid_fraction: float = 0.0,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, valid, test) item indices, stratified by class and split by clip.

    Per class, ``round(fraction * n_clips)`` clips go to test and to valid (at
    least one each when the fraction is positive), the rest to train, which
    keeps at least one clip of every class.
    """
    _check_fraction("test_fraction", test_fraction)
    _check_fraction("valid_fraction", valid_fraction)
    if test_fraction + valid_fraction >= 1.0:
        raise DataError(f"test_fraction + valid_fraction = {test_fraction + valid_fraction} "
                        f"leaves nothing to train on; keep their sum below 1")
    rng = np.random.default_rng(seed)
    labels = ds.clip_labels()
    used = np.unique(ds.clip)
    part = np.zeros(len(ds.clip_ids), dtype=np.int64)   # 0 train, 1 valid, 2 test
    for k in range(ds.n_classes):
        members = used[labels[used] == k]
        n = len(members)
        if n == 0:
            continue
        n_test = max(round(test_fraction * n), 1 if test_fraction > 0 else 0)
        n_valid = max(round(valid_fraction * n), 1 if valid_fraction > 0 else 0)
        if n_test + n_valid > n - 1:
            raise DataError(f"class {ds.class_names[k]!r} has {n} clip{'s' if n != 1 else ''}, "
                            f"too few for a train part plus {n_test} test and {n_valid} "
                            f"validation clips; add clips or lower the fractions")
        order = rng.permutation(members)
        part[order[:n_test]] = 2
        part[order[n_test:n_test + n_valid]] = 1
    item_part = part[ds.clip]
    return tuple(np.flatnonzero(item_part == p).astype(np.int64) for p in (0, 1, 2))


class SplitIndices(tuple):
    """(train, valid, test) item indices from a split folder, plus what did not match.

    ``absent[part]`` lists the listed clip ids not in the dataset; ``unlisted``
    the dataset clips no list names (left out of every part).
    """

    def __new__(cls, parts, absent: dict[str, list[str]], unlisted: list[str], split_dir):
        obj = super().__new__(cls, parts)
        obj.absent, obj.unlisted, obj.split_dir = absent, unlisted, str(split_dir)
        return obj

    def report(self) -> str:
        """One line saying how many listed ids were found, for the user to check."""
        parts = []
        for name, idx in zip(("train", "valid", "test"), self):
            n_absent = len(self.absent.get(name, []))
            parts.append(f"{name} {len(idx)} items ({n_absent} listed ids absent)")
        tail = f", {len(self.unlisted)} dataset clips in no list" if self.unlisted else ""
        return f"split {self.split_dir}: " + ", ".join(parts) + tail


def _read_ids(path: Path) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read split file {path} ({exc}); fix or recreate it") from None
    ids = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.replace("\\", "/")
        if Path(line).suffix.lower() in SUPPORTED_EXTENSIONS:
            line = line[: -len(Path(line).suffix)]
        ids.append("/".join(line.split("/")[-2:]))   # genre/stem, whatever prefix it had
    return ids


def split_from_dir(ds: Dataset, split_dir) -> SplitIndices:
    """(train, valid, test) item indices from train.txt / valid.txt / test.txt in ``split_dir``.

    Each file lists clip ids (``genre/stem``, one a line, as in GTZAN's
    artist-filtered split); valid.txt may be missing. Listed ids absent from the
    dataset are counted in ``.absent`` (see ``.report()``); if none of them is
    present, or a clip is listed in two parts, it raises DataError.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DataError(f"split folder {split_dir} does not exist; pass a folder with "
                        f"train.txt, test.txt and optionally valid.txt")
    lists = {}
    for name in ("train", "valid", "test"):
        path = split_dir / f"{name}.txt"
        if not path.exists():
            if name == "valid":
                lists[name] = []
                continue
            raise DataError(f"split folder {split_dir} has no {name}.txt; add one clip id "
                            f"(genre/stem) per line")
        lists[name] = _read_ids(path)
    owner: dict[str, str] = {}
    for name, ids in lists.items():
        for cid in ids:
            if owner.get(cid, name) != name:
                raise DataError(f"clip {cid} is listed in both {owner[cid]}.txt and {name}.txt "
                                f"of {split_dir}; keep it in one")
            owner[cid] = name
    index = {cid: i for i, cid in enumerate(ds.clip_ids)}
    absent = {name: [c for c in ids if c not in index] for name, ids in lists.items()}
    if all(c not in index for c in owner):
        example = ds.clip_ids[0] if ds.clip_ids else "?"
        raise DataError(f"none of the {len(owner)} clip ids in {split_dir} is in the dataset "
                        f"(dataset ids look like {example!r}); check the split folder")
    part = np.full(len(ds.clip_ids), -1, dtype=np.int64)
    for p, name in enumerate(("train", "valid", "test")):
        for cid in lists[name]:
            if cid in index:
                part[index[cid]] = p
    unlisted = [cid for cid, p in zip(ds.clip_ids, part) if p < 0]
    item_part = part[ds.clip]
    parts = tuple(np.flatnonzero(item_part == p).astype(np.int64) for p in (0, 1, 2))
    return SplitIndices(parts, absent, unlisted, split_dir)


def synthetic_dataset(*args, **kwargs) -> Dataset:
    """The embedded default dataset; see :func:`genrecnn.music.synthetic.synthetic_dataset`."""
    from genrecnn.music.synthetic import synthetic_dataset as make

    return make(*args, **kwargs)
