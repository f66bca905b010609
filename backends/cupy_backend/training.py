"""CuPy: the contract's training ops (:mod:`genrecnn.engine.ops.training`): resident
batches (gather_batch, mask_spans, mix, write) and the cross-entropy that accumulates on
the device (``batches.cu``).

Every op queues work on the current stream and returns without waiting; ``write`` is
an asynchronous host-to-device copy on that stream, so a captured step can read the
per-step values from buffers that never move.
"""
from __future__ import annotations

import math

import numpy as np

from genrecnn.backends.cuda_kernels import grids as G

from . import kernels as K
from .host import HostBase

try:  # CuPy stays optional: the backend must import (and be listed) without it
    import cupy as cp
except Exception:  # ImportError, or a broken CUDA install raising at import
    cp = None

_BLOCK = (G.THREADS, 1, 1)


class CupyTrainingOps(HostBase):
    """Resident batches and the on-device loss for :class:`.CupyBackend` (listed before
    ``Backend`` among its bases)."""

    def gather_batch(self, data, labels, index, start, width):
        _, h, length = (int(s) for s in data.shape)
        b = int(index.shape[0])
        x = cp.empty((b, h, int(width)), dtype=data.dtype)
        y = cp.empty((b,), dtype=cp.int32)
        grid, block = G.copy_rows_grid(b * h, int(width))
        K.launch("batches.cu", "gather_crops", data.dtype, grid, block,
                 (data, labels, index, start, x, y, np.int32(h), np.int64(length),
                   np.int32(width)))
        return x, y

    def mask_spans(self, x, f0, fw, t0, tw):
        b, h, w = (int(s) for s in x.shape)
        out = cp.empty(x.shape, dtype=x.dtype)
        grid, block = G.copy_rows_grid(b * h, w)
        K.launch("batches.cu", "mask_spans", x.dtype, grid, block,
                 (x, out, f0, fw, t0, tw, np.int32(h), np.int32(w)))
        return out

    def mix(self, x, perm, lam):
        b = int(x.shape[0])
        s = math.prod(int(d) for d in x.shape[1:])
        y = cp.empty(x.shape, dtype=x.dtype)
        grid, block = G.copy_rows_grid(b, s)
        K.launch("batches.cu", "mix_pairs", x.dtype, grid, block, (x, perm, lam, y, np.int64(s)))
        return y

    def write(self, dst, a):
        dst.set(np.ascontiguousarray(a, dtype=dst.dtype))   # async, current stream

    def softmax_cross_entropy_acc(self, logits, labels_a, labels_b, lam, stats,
                                  smoothing=0.0):
        n, k = (int(s) for s in logits.shape)
        probs = cp.empty((n, k), dtype=logits.dtype)
        if probs.size:
            K.launch("batches.cu", "softmax_xent_acc", logits.dtype, (G.loss_blocks(n), 1, 1),
                     _BLOCK, (logits, labels_a, labels_b, lam, probs, stats, np.int32(n),
                               np.int32(k), logits.dtype.type(smoothing)))
        return probs

    def softmax_cross_entropy_acc_backward(self, probs, labels_a, labels_b, lam,
                                           smoothing=0.0):
        n, k = (int(s) for s in probs.shape)
        g = cp.empty((n, k), dtype=probs.dtype)
        sms = K.current_sm_count()
        K.launch("batches.cu", "softmax_xent_acc_bwd", probs.dtype,
                 (G.flat_blocks(n * k, sms), 1, 1), _BLOCK,
                 (probs, labels_a, labels_b, lam, g, np.int32(n), np.int32(k),
                  probs.dtype.type(smoothing)))
        return g
