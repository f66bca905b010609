"""The baseline the ConvNet must beat: MFCC and spectral statistics + logistic regression.

Features come from the same [0, 1] log-mel items the network sees (so both are
judged on exactly the same partitions): MFCCs computed from the log-mel with
``librosa.feature.mfcc(S=...)`` and summarised by mean and standard deviation
over time, plus per-band mean, standard deviation and mean absolute frame-to-frame
change (a spectral-flux profile). A standardised scikit-learn
LogisticRegression classifies them.
"""
from __future__ import annotations

import numpy as np

from genrecnn.errors import DataError

N_MFCC = 20


def item_features(x: np.ndarray, top_db: float = 80.0) -> np.ndarray:
    """x[N, n_mels, frames] in [0, 1] -> feature vectors [N, 2*N_MFCC + 3*n_mels]."""
    import librosa

    x = np.asarray(x, dtype=np.float32)
    db = x * top_db - top_db                       # back to dB below the clip's peak
    mfcc = librosa.feature.mfcc(S=db, n_mfcc=N_MFCC)    # [N, N_MFCC, frames]
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
