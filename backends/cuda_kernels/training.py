"""The contract's training ops (:mod:`genrecnn.engine.ops.training`) on ``batches.cu`` for
both CUDA backends, planned once through the primitives of :mod:`.device`: resident
batches (gather_batch, mask_spans, mix) and the cross-entropy that accumulates on the
device. Every op queues work on the backend's stream and returns without waiting.
``write``, a host-to-device copy, is each backend's own. Pure Python: importing it needs
no CUDA.
"""
from __future__ import annotations

import math

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.device import BLOCK, Launches


class ResidentBatchOps(Launches):
    """Resident batches and the on-device loss for a CUDA backend (listed before
    ``Backend`` among its bases)."""

    def gather_batch(self, data, labels, index, start, width):
        _, h, length = (int(s) for s in data.shape)
        b, width = int(index.shape[0]), int(width)
        x = self._dev_empty((b, h, width), data.dtype)
        y = self._dev_empty((b,), "int32")
        grid, block = G.copy_rows_grid(b * h, width)
        self._dev_launch("batches.cu", "gather_crops", "PPPPPPiqi", data.dtype, grid, block,
                         (data, labels, index, start, x, y, h, length, width), {})
        return x, y

    def mask_spans(self, x, f0, fw, t0, tw):
        b, h, w = (int(s) for s in x.shape)
        out = self._dev_empty((b, h, w), x.dtype)
        grid, block = G.copy_rows_grid(b * h, w)
        self._dev_launch("batches.cu", "mask_spans", "PPPPPPii", x.dtype, grid, block,
                         (x, out, f0, fw, t0, tw, h, w), {})
        return out

    def mix(self, x, perm, lam):
        b = int(x.shape[0])
        s = math.prod(int(d) for d in x.shape[1:])
        y = self._dev_empty(x.shape, x.dtype)
        grid, block = G.copy_rows_grid(b, s)
        self._dev_launch("batches.cu", "mix_pairs", "PPPPq", x.dtype, grid, block,
                         (x, perm, lam, y, s), {})
        return y

    def softmax_cross_entropy_acc(self, logits, labels_a, labels_b, lam, stats,
                                  smoothing=0.0):
        n, k = (int(s) for s in logits.shape)
        probs = self._dev_empty((n, k), logits.dtype)
        if n * k:
            self._dev_launch("batches.cu", "softmax_xent_acc", "PPPPPPiiT", logits.dtype,
                             (G.loss_blocks(n), 1, 1), BLOCK,
                             (logits, labels_a, labels_b, lam, probs, stats, n, k, smoothing),
                             {})
        return probs

    def softmax_cross_entropy_acc_backward(self, probs, labels_a, labels_b, lam,
                                           smoothing=0.0):
        n, k = (int(s) for s in probs.shape)
        g = self._dev_empty((n, k), probs.dtype)
        self._flat_launch("batches.cu", "softmax_xent_acc_bwd", "PPPPPiiT", probs.dtype, n * k,
                          (probs, labels_a, labels_b, lam, g, n, k, smoothing))
        return g
