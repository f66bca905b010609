"""One dataset in memory: fixed-size feature items, their classes and the clips they came from.

Windows cut from one clip share its clip index, so splits and votes can work
on clips while the network sees items.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genrecnn.music.baseline import item_features
from genrecnn.music.features import FeatureParams

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
    notes: list[str] = field(default_factory=list)   # what loading has to tell (the cache's)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int]:
        return (int(self.x.shape[1]), int(self.x.shape[2]))

    def item_features(self, rows, top_db: float) -> np.ndarray:
        """The baseline's statistics of the items at ``rows``."""
        return item_features(self.x[rows], top_db)

    def clip_labels(self) -> np.ndarray:
        """int64 [n_clips] class of each clip."""
        labels = np.full(len(self.clip_ids), -1, dtype=np.int64)
        labels[self.clip] = self.y
        return labels


def window_starts(n_frames: int, window: int, hop: int) -> list[int]:
    """Start frames of the windows cut from a clip: every ``hop`` frames while a whole
    window fits (a tail shorter than ``hop`` is dropped)."""
    return list(range(0, n_frames - window + 1, hop))
