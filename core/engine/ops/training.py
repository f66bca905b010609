"""The contract's ops for training itself: batches cut from a training set that lives
on the backend, and a loss that stays there (the parameter updates are in
:mod:`.updates`).

Conventions in :mod:`genrecnn.engine.ops`; ``write`` changes its ``dst`` in place and
returns None.
"""
from __future__ import annotations


class TrainingOps:
    """gather_batch, mask_spans, mix, write; the on-device loss."""

    # -- batches from a resident training set -------------------------------------------

    def gather_batch(self, data, labels, index, start, width: int):
        """Cut a batch of crops from a training set held on this backend.

        data[M, H, T] (float), labels[M] int32, index[B] and start[B] int32 ->
        (x[B, H, width], y[B] int32) with
        ``x[b] = data[index[b], :, start[b]:start[b] + width]`` and
        ``y[b] = labels[index[b]]``. Needs ``0 <= start[b] <= T - width``.
        """
        raise self._unsupported("gather_batch")

    def mask_spans(self, x, f0, fw, t0, tw):
        """SpecAugment-style masking: a copy of x[B, H, W] with rows
        ``f0[b] <= h < f0[b] + fw[b]`` and columns ``t0[b] <= t < t0[b] + tw[b]``
        of example b set to 0 (the band mean after standardisation). All four
        are int32 [B]; a width (>= 0) of 0 masks nothing; spans are clipped to the
        map, so a start may be negative or past the end.
        """
        raise self._unsupported("mask_spans")

    def mix(self, x, perm, lam):
        """Mixup of a batch with a permutation of itself, any trailing shape:
        x[B, ...], perm[B] int32, lam[B] (x's dtype) ->
        ``y[b] = lam[b] * x[b] + (1 - lam[b]) * x[perm[b]]``."""
        raise self._unsupported("mix")

    def write(self, dst, a) -> None:
        """Copy host array ``a`` (same shape and dtype) into the existing array ``dst``,
        in place: per-step values (indices, crop starts, keys) reach a captured
        step without new allocations. Ordered after work already queued."""
        raise self._unsupported("write")

    # -- a loss that stays on the backend -------------------------------------------------

    def softmax_cross_entropy_acc(self, logits, labels_a, labels_b, lam, stats,
                                  smoothing: float = 0.0):
        """Cross-entropy against a pair of labels per example, accumulated in place.

        logits[N, K], labels_a/labels_b[N] int32, lam[N] and stats[2] (logits'
        dtype) -> probs[N, K] (the softmax, max-shifted). Per example the loss is
        ``-(lam log p[a] + (1 - lam) log p[b])`` (mixup; ``lam = 1`` is plain
        cross-entropy), with ``log p`` from the log-sum-exp of the max-shifted row
        (finite for huge logits, so a weight of 0 contributes exactly 0), and its
        credit ``lam [argmax p == a] + (1 - lam) [argmax p == b]`` (the first
        maximum); ``stats[0] += sum of losses``, ``stats[1] += sum of credits``,
        nothing else changes. Nothing is read back to the host: the caller reads
        ``stats`` once per epoch.

        ``smoothing`` eps (label smoothing, ``0 <= eps < 1``, a Python float) makes the
        target of an example the distribution
        ``t = (1 - eps) (lam onehot(a) + (1 - lam) onehot(b)) + eps / K`` and its loss
        ``-sum_k t[k] log p[k] = (1 - eps) (the loss above) - eps mean_k log p[k]``; the
        credit stays that of the hard labels. ``eps = 0`` is exactly the loss above, and
        callers pass the keyword only when it is not 0 (backends from before it still run).
        """
        raise self._unsupported("softmax_cross_entropy_acc")

    def softmax_cross_entropy_acc_backward(self, probs, labels_a, labels_b, lam,
                                           smoothing: float = 0.0):
        """d mean loss / d logits of :meth:`softmax_cross_entropy_acc` with the same
        ``smoothing`` eps: ``(probs - t) / N``, shape [N, K], with the target
        ``t = (1 - eps) (lam onehot(a) + (1 - lam) onehot(b)) + eps / K`` (eps 0:
        ``(probs - lam onehot(a) - (1 - lam) onehot(b)) / N``)."""
        raise self._unsupported("softmax_cross_entropy_acc_backward")
