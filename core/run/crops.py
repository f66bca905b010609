"""Crops of a clip's frames: the windows a prediction averages over.

A network trained on crops of ``width`` frames judges a longer item by the mean
of its probabilities over crops every ``width // 2`` frames, the last one
ending at the item's end, so every frame is seen.
"""
from __future__ import annotations

import numpy as np

from genrecnn.engine.items import take_crops


def covering_starts(frames: int, width: int) -> list[int]:
    """Start frames of half-overlapping crops covering ``frames`` (one crop if it fits)."""
    if frames <= width:
        return [0]
    hop = max(width // 2, 1)
    starts = list(range(0, frames - width + 1, hop))
    if starts[-1] != frames - width:
        starts.append(frames - width)
    return starts


def predict_items(predict, x: np.ndarray, width: int, batch_size: int = 64) -> np.ndarray:
    """Mean class probabilities per item of x[N, M, T] over its covering crops.

    ``predict(batch [B, M, width]) -> probs [B, K]``; crops of all items go
    through it in batches of ``batch_size``.
    """
    n, _, frames = x.shape
    if frames == width:
        pieces = [predict(x[i:i + batch_size]) for i in range(0, n, batch_size)]
        return np.concatenate(pieces) if pieces else np.zeros((0, 0))
    starts = covering_starts(frames, width)
    item = np.repeat(np.arange(n), len(starts))
    start = np.tile(np.asarray(starts), n)
    probs = None
    for i in range(0, len(item), batch_size):
        p = predict(take_crops(x, item[i:i + batch_size], start[i:i + batch_size], width))
        if probs is None:
            probs = np.zeros((n, p.shape[1]))
        np.add.at(probs, item[i:i + batch_size], p)
    return probs / len(starts) if probs is not None else np.zeros((0, 0))
