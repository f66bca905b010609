"""The fit loop: epochs of seeded steps, per-epoch scores, epoch selection, checkpoints.

Every source of randomness is derived from the run's seed (weights from
``seed``, each epoch's plan of examples, crops, masks and mixup from
``(seed, epoch)``), so a run is reproducible and a run resumed from its
checkpoint ends exactly where the uninterrupted one does. Scores on the
valid and test parts average each item's probabilities over crops covering it
(:mod:`genrecnn.run.crops`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from genrecnn.engine.batches import epoch_rng, plan_epoch
from genrecnn.engine.items import ArrayItems
from genrecnn.engine.schedules import learning_rate
from genrecnn.engine.steps import StepRunner
from genrecnn.run.averaging import WeightAverage, continue_average, finish
from genrecnn.run.checkpoint import Checkpoint, refuse_diverged
from genrecnn.run.crops import predict_items
from genrecnn.run.parts import Parts
from genrecnn.run.selection import Selection
from genrecnn.run.settings import TrainSettings


@dataclass
class EpochResult:
    loss: float
    accuracy: float


def predict_proba(network, x, batch_size: int = 64, world=None) -> np.ndarray:
    """Class probabilities for every item of ``x`` (x[N, M, T], or items of their own
    lengths: see :func:`~genrecnn.run.crops.predict_items`): averaged over crops
    covering the item when the network takes fewer frames than it has. With a
    ``world`` of several ranks (whose networks are equal) each rank predicts its share
    of the items and every rank gets all of them. An ensemble
    (:class:`~genrecnn.run.ensemble.Ensemble`): the mean of its members' probabilities,
    each averaged over crops first."""
    members = getattr(network, "members", None)
    if members is not None:
        return np.mean([predict_proba(m, x, batch_size, world) for m in members], axis=0)
    if world is not None and world.size > 1:
        mine = predict_proba(network, x[world.share(len(x))], batch_size)
        return np.concatenate(world.all_gather(mine))
    if len(x) == 0:
        return np.zeros((0, network.n_classes))
    return predict_items(network.predict_proba, x, network.input_shape[1], batch_size)


def evaluate(network, x, y: np.ndarray, batch_size: int = 64, world=None) -> EpochResult:
    """Mean cross-entropy and accuracy of ``network`` on (x, y), without training."""
    if len(y) == 0:
        return EpochResult(float("nan"), float("nan"))
    return scores(predict_proba(network, x, batch_size, world), y)


def scores(probs: np.ndarray, y: np.ndarray) -> EpochResult:
    """Mean cross-entropy and accuracy of the class probabilities ``probs`` for labels ``y``."""
    p = np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)
    return EpochResult(float(-np.log(p).mean()), float((probs.argmax(axis=1) == y).mean()))


def fit(network, optimizer, parts: Parts, settings: TrainSettings,
        checkpoint: Checkpoint | None = None, start_epoch: int = 0,
        history: list[dict] | None = None, on_epoch=None, progress: bool | None = False,
        selection: Selection | None = None, runner: StepRunner | None = None,
        score_test: bool = True, average: WeightAverage | None = None) -> list[dict]:
    """Train from ``start_epoch`` to ``settings.epochs``; return the per-epoch history.

    Each history row has epoch, lr, seconds, train/test (and valid) loss and
    accuracy (test only with ``score_test``: the evaluation protocol scores the test
    part once, at the end). With ``settings.select == "valid"`` and a valid part, the network
    ends with the weights of its best validation epoch (``selection`` carries
    that choice across a resume); ``swa`` and ``precise_bn`` end otherwise (:func:`_finish`;
    ``average``: the SWA mean so far). ``on_epoch(row)`` is called after each epoch's
    checkpoint is written; ``progress``: a tqdm bar per epoch (None: only on a terminal).
    """
    from tqdm import tqdm

    history = list(history or [])
    runner = runner or StepRunner(network, optimizer, training_items(parts), settings)
    world = runner.world
    selecting = settings.select == "valid" and parts.x_valid is not None and not settings.swa
    selection = (selection or Selection()) if selecting else None
    average, current = continue_average(average, settings, start_epoch), None
    items = runner.items
    n, n_mels, frames = len(items), items.n_mels, items.frames
    width = network.input_shape[1]
    per_epoch = -(-n // settings.batch_size)
    total = per_epoch * settings.epochs
    try:
        for epoch in range(start_epoch + 1, settings.epochs + 1):
            t0 = time.perf_counter()
            plans = plan_epoch(n, n_mels, frames, width, settings, epoch_rng(settings.seed, epoch))
            first = (epoch - 1) * per_epoch
            lrs = [learning_rate(settings.schedule, settings.lr, first + i, total, per_epoch)
                   for i in range(len(plans))]
            with tqdm(total=n, desc=f"epoch {epoch}/{settings.epochs}", unit="ex", leave=False,
                      disable=(None if progress is None else not progress)) as bar:
                loss, acc = runner.run_epoch(plans, lrs, on_step=bar.update)
            trained = time.perf_counter() - t0
            row = {"epoch": epoch, "lr": lrs[0], "train_loss": loss, "train_acc": acc}
            refuse_diverged(network, row, epoch, settings.lr)
            _score(row, network, parts, settings.batch_size, world, score_test, selection)
            refuse_diverged(network, row, epoch, settings.lr, weights=False)   # the scores too
            if average is not None and epoch >= average.first:
                average.add(network)
            if (settings.swa or settings.precise_bn) and epoch == settings.epochs:
                current = _finish(row, network, parts, settings, items, average, world,
                                  score_test, selection)
            row.update(seconds=round(time.perf_counter() - t0, 3), train_seconds=round(trained, 4))
            history.append(row)
            if checkpoint is not None and (world is None or world.is_root):
                checkpoint.save(network, optimizer, settings, epoch, history, selection,
                                average, current)
            if on_epoch:
                on_epoch(row)
    finally:
        runner.close()
    if selection is not None and selection.params is not None and current is None:
        network.load_host_params(selection.params)
    return history


def _finish(row: dict, network, parts: Parts, settings: TrainSettings, items, average,
            world, score_test: bool, selection: Selection | None) -> dict:
    """After the last epoch of a run with ``swa`` (the SWA mean replaces the choice by the
    valid part, which is still scored) or ``precise_bn``: make ``network`` the model the
    run ends with (the selected epoch's weights or the SWA mean, batch-norm statistics
    recomputed:
    :mod:`genrecnn.run.averaging`); ``row`` gets how (``swa_epochs``, ``bn_batches``) and
    its scores (``final_valid_*``, ``final_test_*``). Returns the trained weights, which
    a resume goes on from."""
    current = network.host_params()
    if selection is not None and selection.params is not None:
        network.load_host_params(selection.params)
    row.update(finish(network, settings, items, average, world))
    _score(row, network, parts, settings.batch_size, world, score_test, None, prefix="final_")
    refuse_diverged(network, row, row["epoch"], settings.lr)
    return current


def _score(row: dict, network, parts: Parts, batch_size: int, world, score_test: bool,
           selection: Selection | None, prefix: str = "") -> None:
    """The epoch's valid (offered to ``selection``) and test scores, into ``row`` (keys
    after ``prefix``)."""
    if parts.x_valid is not None:
        va = evaluate(network, parts.x_valid, parts.y_valid, batch_size, world)
        row.update({f"{prefix}valid_loss": va.loss, f"{prefix}valid_acc": va.accuracy})
        if selection is not None and selection.offer(row["epoch"], va.accuracy, va.loss,
                                                     network):
            row["selected"] = True
    if score_test:
        te = evaluate(network, parts.x_test, parts.y_test, batch_size, world)
        row.update({f"{prefix}test_loss": te.loss, f"{prefix}test_acc": te.accuracy})


def training_items(parts: Parts):
    """The training part as the step runner reads it (see :mod:`genrecnn.engine.items`)."""
    x = parts.x_train
    return x if hasattr(x, "crops") else ArrayItems(x, parts.y_train)


def format_row(row: dict) -> str:
    """One line per epoch, as the CLI prints it ("*": the selected epoch so far)."""
    def score(p):
        loss, acc = row.get(f"{p}_loss"), row.get(f"{p}_acc")
        if loss is None:
            return ""
        return (f"  {p} loss {max(0.0, loss):.4f} acc {acc:6.1%}"   # never "-0.0000"
                if math.isfinite(loss) else f"  {p} -")
    return (f"epoch {row['epoch']:>3}  lr {row['lr']:.2e}" + score("train") + score("valid")
            + score("test") + f"  ({row['seconds']:.1f}s)" + (" *" if row.get("selected") else ""))
