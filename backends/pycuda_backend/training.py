"""PyCUDA: the contract's training ops (:mod:`genrecnn.engine.ops.training`): resident
batches (gather_batch, mask_spans, mix, write) and the cross-entropy that accumulates on
the device (``batches.cu``).

Every kernel goes through the backend's launch helpers and nothing waits for the
device; ``write`` is an asynchronous copy on the backend's stream.
"""
from __future__ import annotations

import math

import numpy as np

from genrecnn.backends.cuda_kernels import grids as G

from .host import HostBase

_BLOCK = (G.THREADS, 1, 1)


class PycudaTrainingOps(HostBase):
    """Resident batches and the on-device loss for :class:`.PycudaBackend` (listed before
    ``Backend`` among its bases)."""

    def gather_batch(self, data, labels, index, start, width):
        _, h, length = (int(s) for s in data.shape)
        b, width = int(index.shape[0]), int(width)
        dt = str(data.dtype)
        x = self._empty((b, h, width), dt)
        y = self._empty((b,), "int32")
        grid, block = G.copy_rows_grid(b * h, width)
        self._run("batches.cu", "gather_crops", "PPPPPPiqi", dt, grid, block, self._ptr(data),
                  self._ptr(labels), self._ptr(index), self._ptr(start), self._ptr(x),
                  self._ptr(y), h, length, width)
        return x, y

    def mask_spans(self, x, f0, fw, t0, tw):
        b, h, w = (int(s) for s in x.shape)
        out = self._empty((b, h, w), str(x.dtype))
        grid, block = G.copy_rows_grid(b * h, w)
        self._run("batches.cu", "mask_spans", "PPPPPPii", str(x.dtype), grid, block,
                  self._ptr(x), self._ptr(out), self._ptr(f0), self._ptr(fw), self._ptr(t0),
                  self._ptr(tw), h, w)
        return out

    def mix(self, x, perm, lam):
        b = int(x.shape[0])
        s = math.prod(int(d) for d in x.shape[1:])
        y = self._empty(x.shape, str(x.dtype))
        grid, block = G.copy_rows_grid(b, s)
        self._run("batches.cu", "mix_pairs", "PPPPq", str(x.dtype), grid, block, self._ptr(x),
                  self._ptr(perm), self._ptr(lam), self._ptr(y), s)
        return y

    def softmax_cross_entropy_acc(self, logits, labels_a, labels_b, lam, stats,
                                  smoothing=0.0):
        n, k = (int(s) for s in logits.shape)
        dt = str(logits.dtype)
        probs = self._empty((n, k), dt)
        if probs.size:
            self._launch("batches.cu", "softmax_xent_acc", "PPPPPPiiT", dt,
                         (G.loss_blocks(n), 1, 1), _BLOCK, self._ptr(logits),
                         self._ptr(labels_a), self._ptr(labels_b), self._ptr(lam),
                         self._ptr(probs), self._ptr(stats), n, k, float(smoothing))
        return probs

    def softmax_cross_entropy_acc_backward(self, probs, labels_a, labels_b, lam,
                                           smoothing=0.0):
        n, k = (int(s) for s in probs.shape)
        dt = str(probs.dtype)
        g = self._empty((n, k), dt)
        self._elementwise("softmax_xent_acc_bwd", "PPPPPiiT", dt, n * k, self._ptr(probs),
                          self._ptr(labels_a), self._ptr(labels_b), self._ptr(lam),
                          self._ptr(g), n, k, float(smoothing), file="batches.cu")
        return g

    def write(self, dst, a):
        a = np.ascontiguousarray(a, dtype=dst.dtype)
        if a.nbytes:
            self._drv.memcpy_htod_async(self._ptr(dst), a, self._stream)
