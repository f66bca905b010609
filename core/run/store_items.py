"""A feature store as a run's data: every clip at its own length, read crop by crop
from the store's memory map and normalised as it is read, so a run's memory does not
grow with the collection (the map's pages are the kernel's page cache, not the run's).

:class:`StoreDataset` stands where a folder's in-memory :class:`~genrecnn.music.dataset.Dataset`
stands (splits, clip ids, labels); :class:`StoreItems` is a part of it as the step
runner and the predictions see it (:mod:`genrecnn.engine.items`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genrecnn.music.baseline import item_features
from genrecnn.music.normalize import BandNormalizer
from genrecnn.errors import DataError
from genrecnn.music.input_kinds import kind_of
from genrecnn.music.store import FeatureStore, open_store, read_index

# the band statistics are fitted on a seeded sample of this many training clips: enough
# for 128 means and deviations, and a bounded read whatever the collection's size
NORM_SAMPLE_CLIPS = 2000


class StoreItems:
    """Clips of a store as a training set: ``crops`` reads them from the map (a clip
    shorter than the crop is padded with zeros, as a folder's clips are padded to
    their length), then applies the band normaliser (None: raw values)."""

    uploadable = False       # clips of their own lengths are never one array to upload

    def __init__(self, store: FeatureStore, normalizer: BandNormalizer | None):
        self.store, self.normalizer = store, normalizer
        self.labels = store.labels
        if normalizer is not None:           # per band, as columns; a product is cheaper than a quotient
            self._mean = normalizer.mean[:, None]
            self._inv_std = (1.0 / normalizer.std.astype(np.float64)).astype(np.float32)[:, None]

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, rows: slice) -> "StoreItems":
        return StoreItems(self.store.subset(np.arange(len(self))[rows]), self.normalizer)

    @property
    def n_mels(self) -> int:
        return self.store.n_mels

    @property
    def frames(self) -> np.ndarray:
        """Each clip's own length (int64 [n])."""
        return self.store.frames

    @property
    def values(self) -> int:
        return int(self.store.frames.sum()) * self.store.n_mels

    def crops(self, index, start, width: int, out: np.ndarray | None = None) -> np.ndarray:
        index, start = np.asarray(index), np.asarray(start)
        if out is None:
            out = np.empty((len(index), self.n_mels, width), np.float32)
        short = self.store.frames[index] < start + width
        if not short.any():
            self.store.take_crops(index, start, width, out)
        else:
            for b, (i, s) in enumerate(zip(index, start)):
                n = int(min(width, self.store.frames[i] - s))
                out[b, :, :n] = self.store.clip(i)[:, s:s + n]
                out[b, :, n:] = 0
        if self.normalizer is not None:
            out -= self._mean
            out *= self._inv_std
        return out


def fit_normalizer(store: FeatureStore, seed: int) -> BandNormalizer:
    """Per-band mean and deviation over every frame of a seeded sample of the clips
    (all of them up to :data:`NORM_SAMPLE_CLIPS`), in float64."""
    rng = np.random.default_rng([int(seed), 7])
    n = len(store)
    rows = np.sort(rng.choice(n, NORM_SAMPLE_CLIPS, replace=False)) if n > NORM_SAMPLE_CLIPS \
        else np.arange(n)
    total, sq, count = np.zeros(store.n_mels), np.zeros(store.n_mels), 0
    for i in rows:
        clip = np.asarray(store.clip(i), dtype=np.float64)
        total += clip.sum(axis=1)
        sq += np.square(clip).sum(axis=1)
        count += clip.shape[1]
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(sq / max(count, 1) - mean ** 2, 0.0))
    return BandNormalizer(mean, np.where(std < 1e-6, 1.0, std))


def store_input_kind(store: FeatureStore) -> str:
    """The kind of the files a store was made from (a synthetic corpus is drawn on the
    audio features' scale): see :mod:`genrecnn.music.input_kinds`."""
    sources = [c.get("source") for c in read_index(store.path)["clips"]]
    kinds = {kind_of(s) for s in sources if s}
    if len(kinds) > 1:
        raise DataError(f"{store.path} mixes input kinds ({', '.join(sorted(kinds))}) whose "
                        f"value scales differ; make a store of one kind")
    return kinds.pop() if kinds else "audio"


@dataclass(frozen=True)
class StoreClip:
    """One clip of a store, as predict names it: ``STORE/genre/stem``."""

    store: FeatureStore
    index: int

    @property
    def name(self) -> str:
        return self.store.clip_ids[self.index]

    def __str__(self) -> str:
        return f"{self.store.path}/{self.name}"


def store_clips(path) -> list[StoreClip]:
    """Every clip of the store at ``path``, in its order."""
    store = open_store(path)
    return [StoreClip(store, i) for i in range(len(store))]


@dataclass
class StoreDataset:
    """A store where a run expects a dataset: one item per clip (no windows), clip
    ids, labels and feature parameters; the features stay on disk."""

    store: FeatureStore
    skipped: list = field(default_factory=list)

    @property
    def clip_ids(self) -> list[str]:
        return self.store.clip_ids

    @property
    def class_names(self) -> list[str]:
        return self.store.class_names

    @property
    def n_classes(self) -> int:
        return len(self.store.class_names)

    @property
    def params(self):
        return self.store.params

    @property
    def y(self) -> np.ndarray:
        return self.store.labels

    @property
    def clip(self) -> np.ndarray:
        return np.arange(len(self.store))

    @property
    def input_shape(self) -> tuple[int, int]:
        """(bands, the median clip's frames): what a network's input width is cut from."""
        return self.store.n_mels, int(np.median(self.store.frames))

    def clip_labels(self) -> np.ndarray:
        return self.store.labels

    @property
    def input_kind(self) -> str:
        return store_input_kind(self.store)

    def items(self, rows, normalizer) -> StoreItems:
        return StoreItems(self.store.subset(np.asarray(rows, dtype=np.int64)), normalizer)

    def item_features(self, rows, top_db: float) -> np.ndarray:
        """The baseline's statistics of the clips at ``rows``, clip by clip."""
        return np.concatenate([item_features(self.store.clip(i)[None], top_db) for i in rows]) \
            if len(rows) else np.zeros((0, 0))
