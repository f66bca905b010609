"""The baseline the ConvNet must beat: MFCC and spectral statistics + logistic regression.

Features come from the same [0, 1] log-mel items the network sees (so both are
judged on exactly the same partitions): MFCCs computed from the log-mel with
``librosa.feature.mfcc(S=...)`` and summarised by mean and standard deviation
over time, plus per-band mean, standard deviation and mean absolute frame-to-frame
change (a spectral-flux profile). A standardised scikit-learn
LogisticRegression classifies them. A fitted baseline is a handful of arrays
(:class:`LinearBaseline`): the scaler's mean and scale, the regression's weights,
intercepts and classes, so a model file keeps it without pickle and predicts
with NumPy alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrecnn.errors import DataError

N_MFCC = 20


def feature_width(n_mels: int, n_mfcc: int = N_MFCC) -> int:
    """How many statistics :func:`item_features` gives an item of ``n_mels`` bands."""
    return 2 * n_mfcc + 3 * n_mels


def item_features(x: np.ndarray, top_db: float = 80.0, n_mfcc: int = N_MFCC) -> np.ndarray:
    """x[N, n_mels, frames] in [0, 1] -> feature vectors [N, 2*n_mfcc + 3*n_mels]."""
    import librosa

    x = np.asarray(x, dtype=np.float32)
    db = x * top_db - top_db                       # back to dB below the clip's peak
    mfcc = librosa.feature.mfcc(S=db, n_mfcc=n_mfcc)    # [N, n_mfcc, frames]
    flux = np.abs(np.diff(x, axis=2)).mean(axis=2) if x.shape[2] > 1 else np.zeros(x.shape[:2])
    return np.concatenate([mfcc.mean(axis=2), mfcc.std(axis=2), x.mean(axis=2), x.std(axis=2),
                           flux], axis=1).astype(np.float64)


class Baseline:
    """Standardise, then multinomial logistic regression; fit on items, predict probabilities."""

    def __init__(self, top_db: float = 80.0, C: float = 1.0, seed: int = 0):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.top_db = top_db
        self.model = make_pipeline(StandardScaler(),
                                   LogisticRegression(C=C, max_iter=2000, random_state=seed))

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> "Baseline":
        return self.fit_features(item_features(x, self.top_db), y, n_classes)

    def fit_features(self, features: np.ndarray, y: np.ndarray, n_classes: int) -> "Baseline":
        """Fit on items' :func:`item_features` (computed where the items are)."""
        if len(np.unique(y)) < 2:
            raise DataError(f"the baseline needs training clips of at least two genres, got "
                            f"{len(np.unique(y))}; add clips or run with --no-baseline")
        self.n_classes = n_classes
        self.model.fit(features, y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[N, n_classes] probabilities (zero for classes absent from the training part)."""
        return self.predict_features(item_features(x, self.top_db))

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """:meth:`predict_proba` from items' :func:`item_features`."""
        p = self.model.predict_proba(features)
        out = np.zeros((len(features), self.n_classes))
        out[:, self.model.classes_] = p
        return out

    def linear(self, frames: int | None = None) -> "LinearBaseline":
        """The fitted baseline as arrays; ``frames``: the length of the items it learnt
        from (None: whole clips of their own lengths)."""
        scaler, regression = self.model[0], self.model[-1]
        return LinearBaseline(scaler.mean_, scaler.scale_, regression.coef_,
                              regression.intercept_, regression.classes_, self.n_classes,
                              self.top_db, N_MFCC, frames)


@dataclass
class LinearBaseline:
    """A fitted :class:`Baseline` as plain arrays, answering as it does: standardise, then
    a softmax over the classes seen in training (one row of weights: the binary logistic)."""

    mean: np.ndarray            # [features] the scaler's
    scale: np.ndarray           # [features]
    coef: np.ndarray            # [classes seen, features], or [1, features] for two
    intercept: np.ndarray       # [rows of coef]
    classes: np.ndarray         # int64 [classes seen], increasing
    n_classes: int
    top_db: float               # the features' dB range
    n_mfcc: int
    frames: int | None          # the items' length in training (None: whole clips)

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """[N, n_classes] probabilities of items' :func:`item_features`."""
        z = (np.asarray(features, np.float64) - self.mean) / self.scale @ self.coef.T \
            + self.intercept
        if self.coef.shape[0] == 1:
            p = 0.5 * (1.0 + np.tanh(z / 2))          # the logistic, without overflow
            p = np.concatenate([1 - p, p], axis=1)
        else:
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
        out = np.zeros((len(p), self.n_classes))
        out[:, self.classes] = p
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[N, n_classes] probabilities of items x[N, n_mels, frames] in [0, 1]."""
        return self.predict_features(item_features(x, self.top_db, self.n_mfcc))
