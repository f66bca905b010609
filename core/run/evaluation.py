"""The dissertation's evaluation protocol, with the baseline on the same partitions.

N random partitions, stratified by class and by clip; on each, the network is
trained afresh and judged on the test clips (a clip's decision is the mean
window probability, or the majority vote of its windows). The report is the
mean test error with a 95% interval ``err +- 1.96 sqrt(err (1 - err) / (N m))``
(m = test clips per partition) and the mean confusion matrix. With a split
folder the network is trained once on train + valid and judged on test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from genrecnn.music.baseline import Baseline
from genrecnn.errors import DataError
from genrecnn.run.trainer import TrainSettings, fit, make_parts, new_network
from genrecnn.run.training import predict_proba

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


@dataclass
class MethodScore:
    """Test errors of one method over the partitions."""

    name: str
    errors: list[float] = field(default_factory=list)
    confusions: list[np.ndarray] = field(default_factory=list)
    m: list[int] = field(default_factory=list)

    def add(self, y_true, y_pred, n_classes):
        self.errors.append(float(np.mean(y_true != y_pred)))
        self.confusions.append(confusion(y_true, y_pred, n_classes))
        self.m.append(len(y_true))

    @property
    def error(self) -> float:
        return float(np.mean(self.errors))

    @property
    def half_width(self) -> float:
        return interval95(self.error, len(self.errors), int(round(np.mean(self.m))))

    def mean_confusion(self) -> np.ndarray:
        """Mean over partitions of the clip counts."""
        return np.mean(self.confusions, axis=0)

    def as_dict(self) -> dict:
        return {"name": self.name, "error": self.error, "accuracy": 1 - self.error,
                "interval95": self.half_width, "errors": self.errors,
                "test_clips": self.m, "mean_confusion": self.mean_confusion().tolist()}


@dataclass
class EvaluationReport:
    class_names: list[str]
    partitions: int
    network: MethodScore
    baseline: MethodScore | None
    histories: list[list[dict]]
    protocol: str                  # "random" or "split"

    def as_dict(self) -> dict:
        return {"class_names": self.class_names, "partitions": self.partitions,
                "protocol": self.protocol, "network": self.network.as_dict(),
                "baseline": self.baseline.as_dict() if self.baseline else None,
                "histories": self.histories}


def partitions(ds, repeats: int, test_fraction: float, seed: int, split_dir=None):
    """(train, test) item indices of each partition (valid folded into train)."""
    from genrecnn.music.splits import split_from_dir, stratified_split

    if split_dir is not None:
        tr, va, te = split_from_dir(ds, split_dir)
        yield np.concatenate([tr, va]).astype(int), np.asarray(te, dtype=int)
        return
    for r in range(repeats):
        tr, va, te = stratified_split(ds, test_fraction=test_fraction, seed=seed + r)
        yield np.concatenate([tr, va]).astype(int), np.asarray(te, dtype=int)


def run_protocol(ds, settings: TrainSettings, repeats: int = 5, test_fraction: float = 0.2,
                 split_dir=None, placement: str = "numpy", vote: str = "mean",
                 baseline: bool = True, echo=None, progress=False) -> EvaluationReport:
    """Train and judge the network (and the baseline) on each partition of ``ds``."""
    k = len(ds.class_names)
    net_score, base_score = MethodScore("convnet"), MethodScore("baseline") if baseline else None
    histories = []
    for r, (tr, te) in enumerate(partitions(ds, repeats, test_fraction, settings.seed,
                                            split_dir)):
        if len(te) == 0:
            raise DataError("a partition has no test clips; raise --test-fraction or use "
                            "more clips")
        run = TrainSettings.from_dict(dict(settings.as_dict(), seed=settings.seed + r))
        parts = make_parts(ds, tr, None, te, norm=run.norm)
        net = new_network(run, ds.x.shape[1], ds.x.shape[2], k)
        net.place(placement)
        histories.append(fit(net, run.make_optimizer(), parts, run, progress=progress))
        clips, pred = clip_decisions(predict_proba(net, parts.x_test, run.batch_size),
                                     parts.clip_test, vote)
        y_clip = _clip_labels(ds, clips)
        net_score.add(y_clip, pred, k)
        if base_score is not None:
            model = Baseline(top_db=ds.params.top_db, seed=run.seed).fit(ds.x[tr], ds.y[tr], k)
            _, bpred = clip_decisions(model.predict_proba(ds.x[te]), ds.clip[te], vote)
            base_score.add(y_clip, bpred, k)
        if echo:
            line = (f"partition {r + 1}: convnet error {net_score.errors[-1]:.3f}"
                    + (f", baseline error {base_score.errors[-1]:.3f}" if base_score else "")
                    + f" ({len(y_clip)} test clips)")
            echo(line)
    protocol = "split" if split_dir is not None else "random"
    return EvaluationReport(list(ds.class_names), len(net_score.errors), net_score, base_score,
                            histories, protocol)


def _clip_labels(ds, clips: np.ndarray) -> np.ndarray:
    """The class of each clip index (from any of its items)."""
    first = {}
    for item, c in enumerate(np.asarray(ds.clip)):
        first.setdefault(int(c), int(ds.y[item]))
    return np.array([first[int(c)] for c in clips], dtype=np.int64)
