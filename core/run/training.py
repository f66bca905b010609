"""The training loop's pieces: seeded mini-batches, one epoch, evaluation."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
