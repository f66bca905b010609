"""The training set as the step runner sees it: an item count, each item's frames,
its labels, and one function that cuts crops. Nothing else of the set is reached,
so a store that is not one in-memory array (a memory map of clips of different
lengths) can stand in for :class:`ArrayItems`."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def take_crops(x: np.ndarray, index: np.ndarray, start: np.ndarray, width: int,
               out: np.ndarray | None = None) -> np.ndarray:
    """x[index[b], :, start[b]:start[b] + width] for every b, as one [B, M, width] array
    (written into ``out``, in its dtype, when given: a staging buffer)."""
    if out is None:
        return np.ascontiguousarray(sliding_window_view(x, width, axis=2)[index, :, start])
    for b, (i, s) in enumerate(zip(index, start)):
        out[b] = x[i, :, s:s + width]
    return out


class ArrayItems:
    """A training set held as one array ``x[N, M, T]`` with class labels ``y[N]``."""

    uploadable = True        # one array: a step runner may upload it whole (``whole``)

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self._x, self.labels = x, np.asarray(y)

    def __len__(self) -> int:
        return len(self._x)

    def __getitem__(self, rows: slice) -> "ArrayItems":
        return ArrayItems(self._x[rows], self.labels[rows])

    @property
    def n_mels(self) -> int:
        return int(self._x.shape[1])

    @property
    def frames(self) -> int:
        """Frames of every item (all items of an array have the same length)."""
        return int(self._x.shape[2])

    @property
    def values(self) -> int:
        """How many numbers the whole set holds (what uploading it once would take)."""
        return int(self._x.size)

    def crops(self, index, start, width: int, out: np.ndarray | None = None) -> np.ndarray:
        """The crops ``index[b], start[b]`` of ``width`` frames (see :func:`take_crops`)."""
        return take_crops(self._x, index, start, width, out)

    def whole(self) -> np.ndarray:
        """Every item as one [N, M, T] array, for a set uploaded once."""
        return self._x
