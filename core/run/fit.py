"""The fit loop: seeded mini-batches, epochs with per-epoch test (and valid) scores,
checkpoints, and prediction in batches.

Every source of randomness is derived from the run's seed (weights from
``seed``, each epoch's shuffle from ``(seed, epoch)``), so a run is
reproducible and a run resumed from its checkpoint ends exactly where the
uninterrupted one does.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from genrecnn.engine.optim import Optimizer
from genrecnn.run.checkpoint import Checkpoint
from genrecnn.run.parts import Parts
from genrecnn.run.settings import TrainingError, TrainSettings



@dataclass
class EpochResult:
    loss: float
    accuracy: float


def minibatches(n: int, batch_size: int, rng: np.random.Generator | None):
    """Index arrays covering 0..n-1 in batches (shuffled when ``rng`` is given)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def train_epoch(network, optimizer, x: np.ndarray, y: np.ndarray, batch_size: int,
                rng: np.random.Generator, on_batch=None) -> EpochResult:
    """One pass of mini-batch training; ``on_batch(n_done, loss)`` reports progress."""
    total_loss, correct, seen = 0.0, 0, 0
    for idx in minibatches(len(x), batch_size, rng):
        loss, probs = network.loss_and_grads(x[idx], y[idx])
        optimizer.step(network)
        total_loss += loss * len(idx)
        correct += int((probs.argmax(axis=1) == y[idx]).sum())
        seen += len(idx)
        if on_batch:
            on_batch(len(idx), loss)
    return EpochResult(total_loss / max(seen, 1), correct / max(seen, 1))


def predict_proba(network, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities for every row of ``x``, in batches."""
    if len(x) == 0:
        return np.zeros((0, network.n_classes))
    return np.concatenate([network.predict_proba(x[idx])
                           for idx in minibatches(len(x), batch_size, None)])


def evaluate(network, x: np.ndarray, y: np.ndarray, batch_size: int = 64) -> EpochResult:
    """Mean cross-entropy and accuracy of ``network`` on (x, y), without training."""
    probs = predict_proba(network, x, batch_size)
    if len(y) == 0:
        return EpochResult(float("nan"), float("nan"))
    p = np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)
    return EpochResult(float(-np.log(p).mean()), float((probs.argmax(axis=1) == y).mean()))


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The shuffle of epoch ``epoch``: a function of the seed alone, so resume repeats it."""
    return np.random.default_rng([int(seed), int(epoch)])


def fit(network, optimizer: Optimizer, parts: Parts, settings: TrainSettings,
        checkpoint: Checkpoint | None = None, start_epoch: int = 0,
        history: list[dict] | None = None, on_epoch=None, progress: bool | None = False
        ) -> list[dict]:
    """Train from ``start_epoch`` to ``settings.epochs``; return the per-epoch history.

    Each history row has epoch, lr, seconds, train/test (and valid) loss and
    accuracy. ``on_epoch(row)`` is called after each epoch's checkpoint is written.
    ``progress``: a tqdm bar per epoch (None: only on a terminal).
    """
    from tqdm import tqdm

    history = list(history or [])
    for epoch in range(start_epoch + 1, settings.epochs + 1):
        t0 = time.perf_counter()
        lr = optimizer.start_epoch(epoch)
        with tqdm(total=len(parts.x_train), desc=f"epoch {epoch}/{settings.epochs}",
                  unit="ex", leave=False, disable=(None if progress is None else not progress)
                  ) as bar:
            def on_batch(n, loss):
                bar.update(n)
                bar.set_postfix(loss=f"{loss:.3f}")
            tr = train_epoch(network, optimizer, parts.x_train, parts.y_train,
                             settings.batch_size, epoch_rng(settings.seed, epoch), on_batch)
        if not math.isfinite(tr.loss):
            raise TrainingError(f"training diverged at epoch {epoch} (loss {tr.loss}); "
                                f"lower --lr (now {settings.lr:g})")
        row = {"epoch": epoch, "lr": lr, "train_loss": tr.loss, "train_acc": tr.accuracy}
        if parts.x_valid is not None:
            va = evaluate(network, parts.x_valid, parts.y_valid, settings.batch_size)
            row.update(valid_loss=va.loss, valid_acc=va.accuracy)
        te = evaluate(network, parts.x_test, parts.y_test, settings.batch_size)
        row.update(test_loss=te.loss, test_acc=te.accuracy,
                   seconds=round(time.perf_counter() - t0, 3))
        history.append(row)
        if checkpoint is not None:
            checkpoint.save(network, optimizer, settings, epoch, history)
        if on_epoch:
            on_epoch(row)
    return history


def format_row(row: dict) -> str:
    """One line per epoch, as the CLI prints it."""
    def score(p):
        loss, acc = row.get(f"{p}_loss"), row.get(f"{p}_acc")
        if loss is None:
            return ""
        return (f"  {p} loss {max(0.0, loss):.4f} acc {acc:6.1%}"   # never "-0.0000"
                if math.isfinite(loss) else f"  {p} -")
    return (f"epoch {row['epoch']:>3}  lr {row['lr']:.2e}" + score("train") + score("valid")
            + score("test") + f"  ({row['seconds']:.1f}s)")
