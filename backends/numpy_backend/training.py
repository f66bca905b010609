"""NumPy: the contract's training ops (:mod:`genrecnn.engine.ops.training`): batches cut
from a training set held in memory, and the loss accumulated in an array."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .sequence import log_softmax


class NumpyTrainingOps:
    """gather_batch, mask_spans, mix, write and the accumulated loss for
    :class:`.NumpyBackend`."""

    # -- batches from a resident training set ---------------------------------------------

    def gather_batch(self, data, labels, index, start, width):
        windows = sliding_window_view(data, width, axis=2)     # [M, H, T - width + 1, width]
        return (np.ascontiguousarray(windows[index, :, start]),  # [B, H, width]
                labels[index])

    def mask_spans(self, x, f0, fw, t0, tw):
        def inside(start, width, size):                        # [B, size]: in the span
            pos, start = np.arange(size), start.astype(np.int64)[:, None]
            return (pos >= start) & (pos < start + width[:, None])
        masked = inside(f0, fw, x.shape[1])[:, :, None] | inside(t0, tw, x.shape[2])[:, None, :]
        return np.where(masked, x.dtype.type(0), x)

    def mix(self, x, perm, lam):
        lam = lam.reshape((-1,) + (1,) * (x.ndim - 1))
        y = x * lam
        y += x[perm] * (1 - lam)
        return y

    def write(self, dst, a):
        np.copyto(dst, a)

    # -- the on-device loss ---------------------------------------------------------------

    def softmax_cross_entropy_acc(self, logits, labels_a, labels_b, lam, stats,
                                  smoothing=0.0):
        logp = log_softmax(logits)
        rows = np.arange(len(logits))
        losses = -(lam * logp[rows, labels_a] + (1 - lam) * logp[rows, labels_b])
        if smoothing:
            losses = (1 - smoothing) * losses - smoothing * logp.mean(axis=1)
        best = logits.argmax(axis=1)
        credit = (lam * (best == labels_a) + (1 - lam) * (best == labels_b)).sum()
        stats += np.array([losses.sum(), credit], dtype=stats.dtype)
        return np.exp(logp)

    def softmax_cross_entropy_acc_backward(self, probs, labels_a, labels_b, lam,
                                           smoothing=0.0):
        keep = probs.dtype.type(1 - smoothing)
        g = probs - probs.dtype.type(smoothing / probs.shape[1])
        rows = np.arange(len(probs))
        g[rows, labels_a] -= keep * lam
        g[rows, labels_b] -= keep * (1 - lam)
        g /= len(probs)
        return g
