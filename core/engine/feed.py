"""Batches streamed to the first layer's backend while it computes: two page-locked
staging buffers on the host, two slots on the device (the ``staging`` ops).

A prefetch thread cuts step i + 2's crops into a staging buffer while the steps
before it run, and the upload of step i + 1 into the other slot overlaps step i. The
step runner drives it in this order, step by step (upload 0 and the cut of batch 1
before the first step)::

    slot = feed.wait(i)                 # compute queued from now on sees batch i
    feed.start(i + 1, plans[i + 1])     # its cut done, the copy waits for the compute queued so far
    feed.prefetch(i + 2, plans[i + 2])  # cut in the background once upload i has read its buffer
    ... queue step i, reading slot ...

so the copy into slot (i + 1) % 2 starts once step i - 1, the last step that read that
slot, is done, and overlaps step i; and staging buffer (i + 2) % 2 is rewritten only
after upload i, the last that read it, has finished. Reading crops (from a memory-mapped
store, say) thus never holds up the queueing of steps unless it is slower than a step.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from genrecnn.engine.batches import BatchPlan


class BatchFeed:
    """Crops of a training set's items (:mod:`genrecnn.engine.items`) for one backend,
    ``width`` frames, up to ``batch_size`` a step.

    A short batch fills the first rows of its slot (the step reads only those).
    """

    def __init__(self, backend, items, batch_size: int, width: int, dtype: str):
        self.be, self.items, self.width = backend, items, width
        shape = (batch_size, items.n_mels, width)
        self.hosts = [backend.pinned_empty(shape, dtype) for _ in range(2)]
        self.slots = [backend.zeros(shape, dtype) for _ in range(2)]
        self.labels = backend.zeros((batch_size,), "int32")   # gather_batch reads them; its y is unused
        self._tokens: list = [None, None]
        # NumPy copies release the GIL: a few threads cut a batch's crops side by side
        # (one thread copies ~5 GB/s, well under what the host's memory and the bus carry)
        self._threads = min(8, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self._threads) if self._threads > 1 else None
        self._prefetcher = ThreadPoolExecutor(1)
        self._cuts: list = [None, None]        # per buffer: (step, future of its cut)

    def start(self, i: int, plan: BatchPlan) -> None:
        """Step ``i``'s crops in staging buffer i % 2 (cut by :meth:`prefetch`, or now),
        and their upload into slot i % 2 started."""
        k = i % 2
        cut, self._cuts[k] = self._cuts[k], None
        if cut is not None:
            cut[1].result()                      # done (or, if stale, done writing the buffer)
        if cut is None or cut[0] != i:
            self._free(k)
            self._cut(plan, self.hosts[k])
        self._tokens[k] = self.be.upload_async(self.hosts[k], self.slots[k])

    def prefetch(self, i: int, plan: BatchPlan) -> None:
        """Cut step ``i``'s crops into staging buffer i % 2 in the background, once the
        upload that last read that buffer (step i - 2's) has finished. (The wait is
        this thread's: the backend is only ever called from the thread that drives it.)"""
        k = i % 2
        if self._cuts[k] is not None:
            self._cuts[k][1].result()
        self._free(k)
        self._cuts[k] = (i, self._prefetcher.submit(self._cut, plan, self.hosts[k]))

    def _free(self, k: int) -> None:
        """Wait until no upload reads staging buffer ``k``."""
        if self._tokens[k] is not None:
            self.be.upload_finished(self._tokens[k])

    def _cut(self, plan: BatchPlan, out: np.ndarray) -> None:
        """The plan's crops into the first rows of ``out``, in up to ``_threads`` pieces."""
        b = len(plan.index)
        pieces = min(self._threads, b)
        if self._pool is None or pieces < 2:
            self.items.crops(plan.index, plan.start, self.width, out=out)
            return
        bounds = np.linspace(0, b, pieces + 1).astype(int)
        jobs = [self._pool.submit(self.items.crops, plan.index[lo:hi], plan.start[lo:hi],
                                  self.width, out[lo:hi])
                for lo, hi in zip(bounds[:-1], bounds[1:])]
        for job in jobs:
            job.result()

    def wait(self, i: int):
        """Order the compute queued from now on after step ``i``'s upload; its slot."""
        self.be.await_upload(self._tokens[i % 2])
        return self.slots[i % 2]

    def close(self) -> None:
        """Wait until no cut still writes a staging buffer and no upload still reads one
        or writes a slot."""
        for cut in self._cuts:
            if cut is not None:
                cut[1].result()
        self._cuts = [None, None]
        self._prefetcher.shutdown()
        for token in self._tokens:
            if token is not None:
                self.be.upload_finished(token)
        self._tokens = [None, None]
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
