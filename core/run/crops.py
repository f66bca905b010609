"""Crops of a clip's frames: the windows a prediction averages over.

A network trained on crops of ``width`` frames judges a longer item by the mean
of its probabilities over crops every ``width // 2`` frames, the last one
ending at the item's end, so every frame is seen.
"""
from __future__ import annotations

import numpy as np

from genrecnn.engine.items import ArrayItems


def covering_starts(frames: int, width: int) -> list[int]:
    """Start frames of half-overlapping crops covering ``frames`` (one crop if it fits)."""
    if frames <= width:
        return [0]
    hop = max(width // 2, 1)
    starts = list(range(0, frames - width + 1, hop))
    if starts[-1] != frames - width:
        starts.append(frames - width)
    return starts


def predict_items(predict, x, width: int, batch_size: int = 64) -> np.ndarray:
    """Mean class probabilities per item over its covering crops.

    ``x``: items as one array [N, M, T], or a set of items of their own lengths (see
    :mod:`genrecnn.engine.items`: ``len``, ``frames``, ``crops``).
    ``predict(batch [B, M, width]) -> probs [B, K]``; crops of all items go
    through it in batches of ``batch_size``, item by item.
    """
    items = x if hasattr(x, "crops") else ArrayItems(x, np.zeros(len(x), dtype=np.int64))
    n = len(items)
    frames = np.broadcast_to(np.asarray(items.frames), (n,))
    starts = [covering_starts(int(f), width) for f in frames]
    counts = np.array([len(s) for s in starts], dtype=np.int64)
    item = np.repeat(np.arange(n), counts)
    start = np.concatenate(starts).astype(np.int64) if n else np.zeros(0, np.int64)
    probs = None
    for i in range(0, len(item), batch_size):
        p = predict(items.crops(item[i:i + batch_size], start[i:i + batch_size], width))
        if probs is None:
            probs = np.zeros((n, p.shape[1]))
        np.add.at(probs, item[i:i + batch_size], p)
    return probs / counts[:, None] if probs is not None else np.zeros((0, 0))
