"""Scoring clips: windows vote for their clip, errors become a confusion matrix and the
dissertation's 95% interval."""
from __future__ import annotations

import math

import numpy as np

from genrecnn.errors import DataError

VOTES = ("mean", "majority")


def clip_decisions(probs: np.ndarray, clip: np.ndarray, vote: str = "mean"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(clip indices, predicted class per clip) from item probabilities and item clips.

    ``mean``: argmax of the mean probability of a clip's windows; ``majority``:
    the class most windows choose (ties go to the higher mean probability).
    """
    if vote not in VOTES:
        raise DataError(f"unknown vote {vote!r}; use one of {', '.join(VOTES)}")
    clips, inverse = np.unique(clip, return_inverse=True)
    mean = np.zeros((len(clips), probs.shape[1]))
    np.add.at(mean, inverse, probs)
    mean /= np.bincount(inverse, minlength=len(clips))[:, None]
    if vote == "mean":
        return clips, mean.argmax(axis=1)
    votes = np.zeros_like(mean)
    np.add.at(votes, (inverse, probs.argmax(axis=1)), 1.0)
    return clips, (votes + 1e-6 * mean).argmax(axis=1)


def interval95(err: float, n_partitions: int, m: int) -> float:
    """Half-width of the dissertation's 95% interval for a mean error over N*m clips."""
    if n_partitions * m == 0:
        return float("nan")
    return 1.96 * math.sqrt(max(err * (1 - err), 0.0) / (n_partitions * m))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts [true class, predicted class]."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm
