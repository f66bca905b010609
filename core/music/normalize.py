"""Per-mel-band standardisation, fitted on the training part only.

Low bands are louder and busier than high ones in music; standardising each
band gives the first convolution inputs of comparable scale. The statistics
are fitted on training items only (no test information leaks in) and saved
with the model as plain arrays.
"""
from __future__ import annotations

import numpy as np

from genrecnn.errors import DataError

_EPS = 1e-6


class BandNormalizer:
    """x -> (x - mean[band]) / std[band] over [n_items, n_mels, frames] arrays."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.std.shape or (self.std <= 0).any():
            raise DataError("band normalisation needs matching mean/std arrays with std > 0; "
                            "refit it on the training data")

    @property
    def n_bands(self) -> int:
        return len(self.mean)

    @classmethod
    def fit(cls, x: np.ndarray) -> "BandNormalizer":
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[0] == 0:
            raise DataError(f"cannot fit band normalisation on an array of shape {x.shape}; "
                            f"expected [n_items > 0, n_mels, frames]")
        mean = x.mean(axis=(0, 2), dtype=np.float64)
        std = x.std(axis=(0, 2), dtype=np.float64)
        return cls(mean, np.where(std < _EPS, 1.0, std))  # constant bands: shift only

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim not in (2, 3) or x.shape[-2] != self.n_bands:
            raise DataError(f"features of shape {x.shape} do not fit a band normalisation of "
                            f"{self.n_bands} bands; use features computed with the model's "
                            f"parameters")
        out = (x - self.mean[:, None]) / self.std[:, None]
        return out.astype(np.float32, copy=False)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"band_mean": self.mean.copy(), "band_std": self.std.copy()}

    @classmethod
    def from_arrays(cls, d: dict) -> "BandNormalizer":
        try:
            return cls(d["band_mean"], d["band_std"])
        except KeyError as exc:
            raise DataError(f"band normalisation arrays lack {exc}; the model file is "
                            f"incomplete, retrain it") from None
