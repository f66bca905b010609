"""The network and the baseline as one model (`train --with-baseline`): the baseline
of :mod:`genrecnn.music.baseline` fitted on the items the network trains on, kept in
the model file, and the model's answer the mean of both models' class probabilities,
as `evaluate` scores "combined".

In the file the baseline is five arrays (``baseline/mean``, ``baseline/scale``,
``baseline/coef``, ``baseline/intercept``, ``baseline/classes``; see
:mod:`genrecnn.run.model_io`) and ``meta.baseline`` in the header: the features'
``top_db`` and ``n_mfcc``, and ``frames``, the length of the items it learnt from
(null: a feature store's whole clips). Reading checks every one against the others
and against the network, as a header is checked.
"""
from __future__ import annotations

import math

import numpy as np

from genrecnn.errors import DataError, ModelFileError
from genrecnn.music.baseline import Baseline, LinearBaseline, feature_width
from genrecnn.run.model_io import BASELINE, MAX_FRAMES, is_int
from genrecnn.run.scoring import clip_decisions

ARRAYS = ("mean", "scale", "coef", "intercept", "classes")


def fit_run_baseline(ds, rows, seed: int) -> LinearBaseline:
    """The baseline fitted on the items ``rows`` of ``ds`` (a store's: whole clips)."""
    genres = len(np.unique(ds.y[rows]))
    if genres < 2:
        raise DataError(f"--with-baseline needs training clips of at least two genres, got "
                        f"{genres}; add clips or train without --with-baseline")
    top_db = ds.params.top_db
    frames = None if hasattr(ds, "store") else ds.input_shape[1]
    fitted = Baseline(top_db=top_db, seed=seed).fit_features(ds.item_features(rows, top_db),
                                                            ds.y[rows], ds.n_classes)
    return fitted.linear(frames)


def baseline_record(baseline: LinearBaseline) -> tuple[dict, dict]:
    """(the header's ``meta.baseline``, the extra arrays) a model file keeps of
    ``baseline``."""
    spec = {"top_db": float(baseline.top_db), "n_mfcc": int(baseline.n_mfcc),
            "frames": baseline.frames}
    arrays = {BASELINE + name: np.asarray(getattr(baseline, name)) for name in ARRAYS}
    arrays[BASELINE + "classes"] = arrays[BASELINE + "classes"].astype(np.int64)
    return spec, arrays


def _damaged(path, what: str) -> ModelFileError:
    return ModelFileError(f"{path} holds a damaged baseline ({what}); retrain it with "
                          f"--with-baseline or restore the file")


def _spec_problem(spec, n_mels: int) -> str | None:
    """What is wrong with a header's ``meta.baseline`` (None: nothing)."""
    if not isinstance(spec, dict):
        return f"its header field is {str(spec)[:40]}, not an object"
    top_db, n_mfcc, frames = spec.get("top_db"), spec.get("n_mfcc"), spec.get("frames")
    if isinstance(top_db, bool) or not isinstance(top_db, (int, float)) \
            or not 0 < top_db < math.inf:
        return f"top_db {str(top_db)[:20]}"
    if not is_int(n_mfcc) or not 1 <= n_mfcc <= n_mels:
        return f"n_mfcc {str(n_mfcc)[:20]} for {n_mels} mel bands"
    if frames is not None and not (is_int(frames) and 1 <= frames <= MAX_FRAMES):
        return f"frames {str(frames)[:20]}"
    return None


def _arrays_problem(a: dict, width: int, n_classes: int) -> str | None:
    """What is wrong with the baseline's arrays (None: nothing)."""
    missing = [name for name in ARRAYS if name not in a]
    if missing:
        return f"no {', '.join(missing)} array"
    classes = a["classes"]
    if classes.ndim != 1 or not 2 <= len(classes) <= n_classes \
            or not np.issubdtype(classes.dtype, np.integer) \
            or np.any(np.diff(classes) <= 0) or classes[0] < 0 or classes[-1] >= n_classes:
        return f"classes {np.asarray(classes).tolist()!s:.40} for {n_classes} classes"
    rows = 1 if len(classes) == 2 else len(classes)
    for name, shape in (("mean", (width,)), ("scale", (width,)), ("coef", (rows, width)),
                        ("intercept", (rows,))):
        if a[name].shape != shape:
            return f"{name} of shape {list(a[name].shape)}, expected {list(shape)}"
    if not np.all(a["scale"] > 0):
        return "a scale that is not positive"
    return None


def read_baseline(path, meta: dict, extra: dict, n_mels: int, n_classes: int
                  ) -> LinearBaseline | None:
    """The baseline a model file keeps (None: it keeps none), every part checked; or
    ModelFileError in one line."""
    spec = meta.get("baseline")
    arrays = {k[len(BASELINE):]: v for k, v in extra.items() if k.startswith(BASELINE)}
    if spec is None and not arrays:
        return None
    problem = _spec_problem(spec, n_mels)
    if problem is None:
        problem = _arrays_problem(arrays, feature_width(n_mels, spec["n_mfcc"]), n_classes)
    if problem is not None:
        raise _damaged(path, problem)
    return LinearBaseline(*(np.asarray(arrays[name], np.float64) for name in ARRAYS[:4]),
                          arrays["classes"].astype(np.int64), n_classes,
                          float(spec["top_db"]), spec["n_mfcc"], spec["frames"])


def combine(pred, baseline: LinearBaseline, items: np.ndarray) -> None:
    """Make ``pred`` (a clip's :class:`~genrecnn.run.inference.Prediction`) the mean of
    the network's answer and the baseline's, the mean over the clip's ``items``; both
    stay beside it."""
    pred.network_probs = pred.probs
    pred.baseline_probs = baseline.predict_proba(items).mean(axis=0)
    pred.probs = (pred.network_probs + pred.baseline_probs) / 2


def baseline_metrics(baseline: LinearBaseline | None, ds, rows, network_probs, parts,
                     vote: str) -> dict:
    """What metrics.json adds for a model with a baseline: the test part's accuracy (by
    item and by clip) of the network, the baseline and the two combined."""
    if baseline is None:
        return {}
    base = baseline.predict_features(ds.item_features(rows, baseline.top_db))
    labels, out = ds.clip_labels(), {}
    for name, probs in (("network", network_probs), ("baseline", base),
                        ("combined", (network_probs + base) / 2)):
        clips, pred = clip_decisions(probs, parts.clip_test, vote)
        out[name] = {"test_acc": float((probs.argmax(axis=1) == parts.y_test).mean()),
                     "test_clip_acc": float((pred == labels[clips]).mean())}
    return {"with_baseline": out}


def baseline_summary(metrics: dict) -> str:
    """What the summary line adds for a model with a baseline."""
    scores = metrics.get("with_baseline")
    if not scores:
        return ""
    return (f"; the network with the baseline (the model's answer): "
            f"{scores['combined']['test_clip_acc']:.1%}, the baseline alone: "
            f"{scores['baseline']['test_clip_acc']:.1%}")
