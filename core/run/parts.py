"""The arrays of one split, normalised for the network, and the normaliser's arrays
in a model file. The per-band statistics are fitted on the training part only."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from genrecnn.music.normalize import BandNormalizer
from genrecnn.run.settings import TrainingError
from genrecnn.run.store_items import fit_normalizer

@dataclass
class Parts:
    """The arrays of one split, normalised for the network; clips kept for clip-level votes."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    clip_test: np.ndarray
    x_valid: np.ndarray | None = None
    y_valid: np.ndarray | None = None
    normalizer: object = None       # a BandNormalizer, or None for raw input


def split_digest(ds, idx_train, idx_valid, idx_test) -> str:
    """A short fingerprint of which clips are in which part (checked on resume)."""
    h = hashlib.sha256()
    for name, idx in (("train", idx_train), ("valid", idx_valid), ("test", idx_test)):
        clips = sorted({ds.clip_ids[c] for c in np.asarray(ds.clip)[np.asarray(idx, dtype=int)]})
        h.update(json.dumps([name, clips, list(ds.class_names)]).encode())
    return h.hexdigest()[:16]


def make_parts(ds, idx_train, idx_valid, idx_test, norm: str = "band",
               normalizer: BandNormalizer | None = None, seed: int = 0) -> Parts:
    """Slice the dataset; fit the per-band normaliser on the training part only (or use
    ``normalizer``, a resumed run's saved statistics, exactly). A feature store's parts
    stay on disk (:mod:`genrecnn.run.store_items`): its normaliser is fitted on a
    ``seed``-drawn sample of the training clips."""
    idx_train, idx_test = np.asarray(idx_train, dtype=int), np.asarray(idx_test, dtype=int)
    idx_valid = np.asarray(idx_valid if idx_valid is not None else [], dtype=int)
    if len(idx_train) == 0:
        raise TrainingError("the training part is empty; use a smaller --test-fraction or "
                            "more clips")
    on_disk = hasattr(ds, "store")
    if normalizer is None and norm == "band":
        normalizer = (fit_normalizer(ds.store.subset(idx_train), seed) if on_disk
                      else BandNormalizer.fit(ds.x[idx_train]))

    def prep(idx):
        if on_disk:
            return ds.items(idx, normalizer)
        x = ds.x[idx]
        return normalizer.transform(x) if normalizer is not None else x.astype(np.float32)

    parts = Parts(prep(idx_train), ds.y[idx_train], prep(idx_test), ds.y[idx_test],
                  np.asarray(ds.clip)[idx_test], normalizer=normalizer)
    if len(idx_valid):
        parts.x_valid, parts.y_valid = prep(idx_valid), ds.y[idx_valid]
    return parts


def normalizer_arrays(normalizer) -> dict:
    """``norm/<key>`` extra arrays of a BandNormalizer (empty for raw input)."""
    if normalizer is None:
        return {}
    return {f"norm/{k}": v for k, v in normalizer.to_arrays().items()}


def normalizer_from_extra(extra: dict):
    """The BandNormalizer stored in a model's extra arrays, or None."""
    arrays = {k[len("norm/"):]: v for k, v in extra.items() if k.startswith("norm/")}
    if not arrays:
        return None
    return BandNormalizer.from_arrays(arrays)
