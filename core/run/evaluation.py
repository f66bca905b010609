"""The dissertation's evaluation protocol, with the baseline on the same partitions.

N random partitions, stratified by class and by clip; on each, the network is
trained afresh and judged on the test clips (a clip's decision is the mean
window probability, or the majority vote of its windows). The report is the
mean test error with a 95% interval ``err +- 1.96 sqrt(err (1 - err) / (N m))``
(m = test clips per partition) and the mean confusion matrix. With a split
folder the network is trained once on train + valid and judged on test. With
``--ensemble K`` each partition trains K networks, judged by the mean of their
probabilities ("convnet"), and the first alone is scored beside them ("single").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genrecnn.engine.placement import format_plan
from genrecnn.errors import DataError
from genrecnn.fsutil import output_folder
from genrecnn.music.baseline import Baseline
from genrecnn.music.splits import split_from_dir, stratified_split
from genrecnn.run.data import load_run_data
from genrecnn.run.ensemble import train_members
from genrecnn.run.input_checks import check_crop
from genrecnn.run.options import RunOptions
from genrecnn.run.parts import make_parts
from genrecnn.run.plots import confusion_matrix
from genrecnn.run.scoring import clip_decisions, confusion, interval95
from genrecnn.run.session import place_for_parts
from genrecnn.run.settings import TrainSettings, describe_settings, new_network
from genrecnn.world import world


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
    combined: MethodScore | None = None    # the mean of both models' probabilities
    ensemble: int = 1                      # networks per partition ("convnet": their mean)
    single: MethodScore | None = None      # an ensemble's first network alone

    def as_dict(self) -> dict:
        return {"class_names": self.class_names, "partitions": self.partitions,
                "protocol": self.protocol, "ensemble": self.ensemble,
                "network": self.network.as_dict(),
                "single": self.single.as_dict() if self.single else None,
                "baseline": self.baseline.as_dict() if self.baseline else None,
                "combined": self.combined.as_dict() if self.combined else None,
                "histories": self.histories}

    def table(self) -> str:
        """Errors with their 95% intervals, side by side, and the mean confusion matrix."""
        n = self.partitions
        m = int(round(np.mean(self.network.m)))
        rows = [f"{'method':<10} {'error':>7} {'95% interval':>16} {'accuracy':>9}   "
                f"({n} partition(s) x {m} test clips, {self.protocol})"]
        for score in (self.network, self.single, self.baseline, self.combined):
            if score is None:
                continue
            e, h = score.error, score.half_width
            rows.append(f"{score.name:<10} {e:>7.3f} {f'+- {h:.3f}':>16} {1 - e:>9.1%}")
        if self.single is not None:
            rows.append(f"convnet: the mean of {self.ensemble} networks' class probabilities; "
                        f"single: the first of them alone")
        if self.combined is not None:
            rows.append("combined: the mean of the convnet's and the baseline's class "
                        "probabilities")
        names = [c[:8] for c in self.class_names]
        rows.append("mean confusion (convnet; rows true, columns predicted, clips):")
        rows.append(" " * 10 + "".join(f"{c:>9}" for c in names))
        for name, row in zip(names, self.network.mean_confusion()):
            rows.append(f"{name:<10}" + "".join(f"{v:>9.1f}" for v in row))
        return "\n".join(rows)


def chooses_epoch(settings: TrainSettings) -> bool:
    """Whether a split folder's valid part is kept apart to choose the epoch: with
    ``--select valid``, unless ``--swa`` replaces the choice (the valid part then trains)."""
    return settings.select == "valid" and not settings.swa


def partitions(ds, repeats: int, test_fraction: float, seed: int, split_dir=None,
               keep_valid: bool = False, echo=None):
    """(train, valid, test) item indices of each partition: random partitions have no
    valid part; a split folder's valid part is kept apart when ``keep_valid`` (it
    chooses the epoch), else folded into train. A split folder's report (listed ids
    absent from the data) goes to ``echo``."""
    empty = np.zeros(0, dtype=int)
    if split_dir is not None:
        split = split_from_dir(ds, split_dir)
        if echo:
            echo(split.report())
        tr, va, te = (np.asarray(p, dtype=int) for p in split.check_usable())
        yield (tr, va, te) if keep_valid else (np.concatenate([tr, va]), empty, te)
        return
    for r in range(repeats):
        tr, va, te = stratified_split(ds, test_fraction=test_fraction, seed=seed + r)
        yield np.concatenate([tr, va]).astype(int), empty, np.asarray(te, dtype=int)


@dataclass
class _Scores:
    """The protocol's running scores: the network's, and the baseline's and the two
    combined when the baseline runs."""

    network: MethodScore = field(default_factory=lambda: MethodScore("convnet"))
    baseline: MethodScore | None = None
    combined: MethodScore | None = None
    single: MethodScore | None = None

    @classmethod
    def new(cls, baseline: bool, ensemble: bool = False) -> "_Scores":
        scores = (cls(baseline=MethodScore("baseline"), combined=MethodScore("combined"))
                  if baseline else cls())
        scores.single = MethodScore("single") if ensemble else None
        return scores

    def line(self, i: int, clips: int) -> str:
        """Partition ``i``'s errors."""
        return (f"partition {i + 1}: convnet error {self.network.errors[i]:.3f}"
                + (f", single network error {self.single.errors[i]:.3f}" if self.single else "")
                + (f", baseline error {self.baseline.errors[i]:.3f}" if self.baseline else "")
                + f" ({clips} test clips)")


def _judge(ds, parts, tr, te, trained, vote: str, seed: int, baseline: bool) -> dict:
    """One partition's test decisions (clip labels, the network's (an ensemble's, and its
    first network's alone), and the baseline's trained on the same items and the two
    combined, when it runs)."""
    k, probs = ds.n_classes, trained.test_probs
    clips, pred = clip_decisions(probs, parts.clip_test, vote)
    out = {"truth": ds.clip_labels()[clips], "convnet": pred}
    if trained.members:
        out["single"] = clip_decisions(trained.members[0].test_probs, parts.clip_test, vote)[1]
    if baseline:
        top_db = ds.params.top_db
        model = Baseline(top_db=top_db, seed=seed).fit_features(ds.item_features(tr, top_db),
                                                                ds.y[tr], k)
        base_probs = model.predict_features(ds.item_features(te, top_db))
        out["baseline"] = clip_decisions(base_probs, parts.clip_test, vote)[1]
        out["combined"] = clip_decisions((probs + base_probs) / 2, parts.clip_test, vote)[1]
    return out


def _partition(ds, settings, options, r, tr, va, te, placement, baseline, say, progress):
    """Train and judge on partition ``r``; (its record, the placement it used)."""
    if len(te) == 0:    # a split folder's empty test part is refused by split_from_dir
        raise DataError("a partition has no test clips; raise --test-fraction or use "
                        "more clips")
    run = TrainSettings.from_dict(dict(settings.as_dict(), seed=settings.seed + r))
    parts = make_parts(ds, tr, va, te, norm=run.norm, seed=run.seed)
    net = new_network(run, *ds.input_shape, ds.n_classes)
    if placement is None:
        placement, _ = place_for_parts(net, parts, run, options,
                                       lambda s: say(f"placement: {s}"))
        say(f"placement: {format_plan(net.layers, placement)}")
    else:
        net.place(placement)
    trained = train_members(net, parts, run, options, progress=progress, score_test=False,
                            say=lambda s: say(f"partition {r + 1}, {s}"))
    record = _judge(ds, parts, tr, te, trained, options.vote, run.seed, baseline)
    return dict(record, r=r, history=trained.history), placement


def run_protocol(ds, settings: TrainSettings, options: RunOptions, *, repeats: int = 5,
                 baseline: bool = True, echo=None, progress=False) -> EvaluationReport | None:
    """Train and judge the network (and the baseline) on each partition of ``ds``; the
    baseline learns from the same items the network trains on. The placement is
    resolved once, on the first partition's network (``auto`` measures once, for a
    training set of that partition's size), and kept for the others.

    In an MPI run the ranks share the partitions out (rank k takes every N-th, from the
    k-th) and rank 0 reports them all, in order; the other ranks return None.
    """
    w = world()
    say = (echo or (lambda s: None)) if w.is_root else (lambda s: None)
    mine, placement, ensemble = [], None, settings.ensemble > 1
    for r, (tr, va, te) in enumerate(partitions(ds, repeats, options.test_fraction,
                                                settings.seed, options.split_dir,
                                                chooses_epoch(settings), say)):
        if r % w.size != w.rank:
            continue
        record, placement = _partition(ds, settings, options, r, tr, va, te, placement,
                                       baseline, say, progress)
        mine.append(record)
        if w.size == 1:
            say(_score(mine, ds.n_classes, baseline, ensemble).line(r, len(record["truth"])))
    gathered = w.gather(mine)
    if not w.is_root:
        return None
    records = sorted((rec for part in gathered for rec in part), key=lambda rec: rec["r"])
    scores = _score(records, ds.n_classes, baseline, ensemble)
    if w.size > 1:
        for i, rec in enumerate(records):
            say(scores.line(i, len(rec["truth"])) + f" [rank {rec['r'] % w.size}]")
    protocol = "split" if options.split_dir is not None else "random"
    return EvaluationReport(list(ds.class_names), len(scores.network.errors), scores.network,
                            scores.baseline, [rec["history"] for rec in records], protocol,
                            scores.combined, settings.ensemble, scores.single)


def _score(records: list[dict], n_classes: int, baseline: bool, ensemble: bool) -> _Scores:
    scores = _Scores.new(baseline, ensemble)
    for rec in records:
        for name in ("network", "single", "baseline", "combined"):
            method = getattr(scores, name)
            if method is not None:
                method.add(rec["truth"], rec["convnet" if name == "network" else name], n_classes)
    return scores


def evaluate_folder(options: RunOptions, *, repeats: int, baseline: bool, out, echo=print,
                    progress: bool = True):
    """What `genrecnn evaluate` does: load DATA, run the protocol (the placement
    resolved once), draw the mean confusion matrix to ``out``.
    Returns (JSON-ready result, EvaluationReport, dataset); under MPI the ranks other
    than 0 share the partitions, write nothing and return (None, None, dataset)."""
    settings = options.settings()
    if not world().is_root:
        ds = load_run_data(options, progress=False)
        run_protocol(ds, settings, options, repeats=repeats, baseline=baseline)
        return None, None, ds
    # fail now, not after training, if out is unwritable; leave no empty folder on failure
    with output_folder(Path(out).parent):
        echo(f"recipe: {settings.recipe} ({describe_settings(settings)})")
        ds = load_run_data(options, progress=progress)
        for note in getattr(ds, "notes", []):
            echo(f"note: {note}")
        windows = f"{len(ds.x)} windows of " if options.windows else "input "
        echo(f"data: {options.data}, {len(ds.clip_ids)} clips of {ds.n_classes} classes "
             f"({', '.join(ds.class_names)}), {windows}{ds.input_shape[0]}x{ds.input_shape[1]}")
        check_crop(options.crop, ds.input_shape[1])
        report = run_protocol(ds, settings, options, repeats=repeats, baseline=baseline,
                              echo=echo)
        confusion_matrix(report.network.mean_confusion(), ds.class_names, out,
                         title=f"convnet, mean over {report.partitions} partition(s)")
        result = dict(report.as_dict(), confusion_png=str(out),
                      skipped=[{"path": p, "reason": r} for p, r in ds.skipped])
        return result, report, ds
