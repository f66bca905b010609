"""What each training step sees: a seeded plan of examples, crops, masks and mixup.

The plan is drawn on the host from a generator seeded by (seed, epoch), so a
run is reproducible and a resumed run repeats it. The same plan is carried out
either on the host (NumPy, then one copy to the first layer's backend) or on
the backend itself from a training set uploaded once (the ``batch`` ops), with
identical results.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class StepOptions:
    """What :func:`plan_epoch` and the step runner read of a run's settings (a run's
    ``TrainSettings`` has the same fields)."""

    batch_size: int
    mixup: float = 0.0           # Beta(a, a) mixing of example pairs; 0: off
    freq_mask: int = 0           # widest masked band span per example; 0: off
    time_mask: int = 0           # widest masked frame span per example; 0: off
    label_smoothing: float = 0.0  # targets (1 - eps) onehot + eps / K; 0: off


@dataclass
class BatchPlan:
    """One step's choices, every array int32 [B] except ``lam`` (float64 [B])."""

    index: np.ndarray            # items of the training set
    start: np.ndarray            # first frame of each crop
    f0: np.ndarray               # masked band span per example (width fw, 0: none)
    fw: np.ndarray
    t0: np.ndarray               # masked frame span per example (width tw, 0: none)
    tw: np.ndarray
    perm: np.ndarray             # mixup partner within the batch (itself when off)
    lam: np.ndarray              # mixup weight of the example itself (1 when off)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The draws of epoch ``epoch``: a function of the seed alone, so resume repeats them."""
    return np.random.default_rng([int(seed), int(epoch)])


def plan_epoch(n_items: int, n_mels: int, frames, width: int, settings,
               rng: np.random.Generator) -> list[BatchPlan]:
    """Shuffled batches of ``settings.batch_size`` (the last one may be smaller) with a
    random crop of ``width`` frames per example and the settings' masks and mixup.

    ``frames``: every item's length (an int), or each item's own (int array [n_items]:
    clips of different lengths); an item no longer than ``width`` is cropped from 0."""
    order = rng.permutation(n_items)
    ragged = np.ndim(frames) > 0
    room = np.maximum(np.asarray(frames, dtype=np.int64) - width + 1, 1)
    plans = []
    for s in range(0, n_items, settings.batch_size):
        index = order[s:s + settings.batch_size].astype(np.int32)
        b = len(index)
        start = rng.integers(0, room[index] if ragged else int(room), b)
        fw = rng.integers(0, settings.freq_mask + 1, b)
        f0 = rng.integers(0, n_mels, b)
        tw = rng.integers(0, settings.time_mask + 1, b)
        t0 = rng.integers(0, width, b)
        if settings.mixup > 0:
            lam = rng.beta(settings.mixup, settings.mixup, b)
            perm = rng.permutation(b)
        else:
            lam, perm = np.ones(b), np.arange(b)
        plans.append(BatchPlan(index, *(a.astype(np.int32) for a in (start, f0, fw, t0, tw, perm)),
                               lam))
    return plans


def shard(plan: BatchPlan, part: slice) -> BatchPlan:
    """Rows ``part`` of a global batch's plan: one rank's share in a data-parallel run.
    Mixup partners stay inside the share (the order of their global partners' rows)."""
    perm = plan.perm[part]
    local = np.argsort(np.argsort(perm, kind="stable"), kind="stable").astype(np.int32)
    return BatchPlan(plan.index[part], plan.start[part], plan.f0[part], plan.fw[part],
                     plan.t0[part], plan.tw[part], local, plan.lam[part])


def masked(plan: BatchPlan) -> bool:
    return bool(plan.fw.any() or plan.tw.any())


def mixed(plan: BatchPlan) -> bool:
    return bool((plan.lam != 1).any())


def assemble_on_host(items, plan: BatchPlan, width: int):
    """The batch of ``plan`` from a training set on the host (see
    :mod:`genrecnn.engine.items`): (x [B, M, width], labels_a, labels_b, lam), exactly as
    the ``batch`` ops of the contract compute it on a backend."""
    xb = items.crops(plan.index, plan.start, width)
    if masked(plan):
        rows = np.arange(xb.shape[1])[None, :]
        cols = np.arange(xb.shape[2])[None, :]
        hit_f = (rows >= plan.f0[:, None]) & (rows < (plan.f0 + plan.fw)[:, None])
        hit_t = (cols >= plan.t0[:, None]) & (cols < (plan.t0 + plan.tw)[:, None])
        xb[hit_f[:, :, None] | hit_t[:, None, :]] = 0
    la = items.labels[plan.index].astype(np.int32)
    lam = plan.lam.astype(xb.dtype)
    if mixed(plan):
        xb = lam[:, None, None] * xb + (1 - lam)[:, None, None] * xb[plan.perm]
    return xb, la, la[plan.perm], lam
