"""Splitting a dataset into train / valid / test by clip: stratified random
partitions, or the lists of a split folder (e.g. GTZAN's artist-filtered split).
Windows of one clip never straddle two parts."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genrecnn.errors import DataError
from genrecnn.fsutil import regular_file_problem
from genrecnn.music.dataset import Dataset
from genrecnn.music.features import SUPPORTED_EXTENSIONS

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
            least = 2 + (valid_fraction > 0)      # one clip each to train, test (and validate)
            advice = ("lower the fractions" if n >= least else
                      f"add clips (a genre needs at least {least}) or leave it out with --genres")
            raise DataError(f"class {ds.class_names[k]!r} has {n} clip{'s' if n != 1 else ''}, "
                            f"too few for a train part plus {n_test} test and {n_valid} "
                            f"validation clips; {advice}")
        order = rng.permutation(members)
        part[order[:n_test]] = 2
        part[order[n_test:n_test + n_valid]] = 1
    item_part = part[ds.clip]
    return tuple(np.flatnonzero(item_part == p).astype(np.int64) for p in (0, 1, 2))


class SplitIndices(tuple):
    """(train, valid, test) item indices from a split folder, plus what did not match.

    ``absent[part]`` lists the listed clip ids not in the dataset; ``unlisted``
    the dataset clips no list names (left out of every part); ``clips`` the
    number of clips per part; ``trained`` the genres the training part holds.
    """

    def __new__(cls, parts, absent: dict[str, list[str]], unlisted: list[str], split_dir,
                clips: list[int], trained: list[str], untrained: list[str]):
        obj = super().__new__(cls, parts)
        obj.absent, obj.unlisted, obj.split_dir = absent, unlisted, Path(split_dir)
        obj.clips, obj.trained, obj.untrained = clips, trained, untrained
        return obj

    def report(self) -> str:
        """One line saying how many listed ids were found, for the user to check."""
        parts = []
        for name, n in zip(("train", "valid", "test"), self.clips):
            n_absent = len(self.absent.get(name, []))
            parts.append(f"{name} {n} clips ({n_absent} listed ids absent from the data)")
        tail = f", {len(self.unlisted)} dataset clips in no list" if self.unlisted else ""
        if self.untrained:
            tail += f"; no training clips of {', '.join(self.untrained)}"
        return f"split {self.split_dir}: " + ", ".join(parts) + tail

    def check_usable(self) -> "SplitIndices":
        """Refuse a split a network cannot be trained and judged on: no test clip in the
        data, or training clips of fewer than two genres."""
        if self.clips[2] == 0:
            raise DataError(f"none of the clip ids in {self.split_dir / 'test.txt'} is in the "
                            f"dataset ({len(self.absent['test'])} listed, all absent); list test "
                            f"clips that DATA holds")
        if len(self.trained) < 2:
            raise DataError(f"the training clips of {self.split_dir} (train.txt) that are in "
                            f"the dataset are of {len(self.trained)} genre(s) "
                            f"({', '.join(self.trained) or 'none'}); a classifier needs at "
                            f"least two: list more training clips")
        return self


def _read_ids(path: Path) -> list[str]:
    problem = regular_file_problem(path)
    if problem is not None:
        raise DataError(f"split file {path} {problem}; make it a text file of clip ids")
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
    ``.check_usable()`` refuses a split that cannot train and judge a classifier.
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
    trained = [c for k, c in enumerate(ds.class_names) if np.any(ds.y[parts[0]] == k)]
    untrained = [c for c in ds.class_names if c not in trained]
    clips = [int((part == p).sum()) for p in (0, 1, 2)]
    return SplitIndices(parts, absent, unlisted, split_dir, clips, trained, untrained)
