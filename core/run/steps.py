"""Carrying out training steps: the batch a plan names, the loss, the gradients and
the update, for one network and its optimiser.

Two paths, with identical results:

* device: the training set is uploaded once to the first layer's backend
  (when it implements the ``batch`` ops and the set fits ``resident_budget``),
  each step's choices are written to small device arrays, the batch is cut,
  masked and mixed there, and the loss accumulates on the output layer's
  backend, read once per epoch. When every backend of the placement can, the
  whole step (batch, forward, loss, backward, update) is captured once as a
  CUDA graph and replayed (``graphs``; off for debugging).
* host: NumPy assembles each batch and sends it to the first layer's backend;
  any placement and any backend.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrecnn.engine.graphs import SharedStream, graph_obstacle
from genrecnn.run.batches import BatchPlan, assemble_on_host

RESIDENT_BUDGET = 4 << 30        # bytes of training set uploaded once (default)


@dataclass
class _Buffers:
    """One batch size's per-step device arrays (written before every step)."""

    index: object
    start: object
    f0: object
    fw: object
    t0: object
    tw: object
    perm: object
    lam_x: object
    la: object
    lb: object
    lam: object


class StepRunner:
    """Runs the steps of an epoch and returns its mean loss and accuracy."""

    def __init__(self, network, optimizer, x: np.ndarray, y: np.ndarray, settings, *,
                 graphs: bool = True, resident_budget: int = RESIDENT_BUDGET):
        self.net, self.opt, self.x, self.y = network, optimizer, x, y
        self.settings = settings
        self.width = network.input_shape[1]
        self.masks = settings.freq_mask > 0 or settings.time_mask > 0
        self.mixup = settings.mixup > 0
        network.ensure_placed()
        first, last = network.backends[0], network.backends[-1]
        self.device = (first.supports("batch") and last.supports("train_loss")
                       and x.size * np.dtype(network.dtype).itemsize <= resident_budget)
        self.graphs = graphs and self.device and not graph_obstacle(network.backends)
        self._ready = False
        self._stream = None
        self._captured = None
        self._warm = False
        self._buffers: dict[int, _Buffers] = {}

    @property
    def path(self) -> str:
        """How steps run: "graph", "device" or "host"."""
        return "graph" if self.graphs else "device" if self.device else "host"

    # -- epochs -------------------------------------------------------------------------

    def run_epoch(self, plans: list[BatchPlan], lrs: list[float], on_step=None
                  ) -> tuple[float, float]:
        if not self.device:
            return self._host_epoch(plans, lrs, on_step)
        self._setup()
        last = self.net.backends[-1]
        last.write(self.stats, np.zeros(2, dtype=self.net.dtype))
        seen = 0
        for plan, lr in zip(plans, lrs):
            self.opt.lr = lr
            b = len(plan.index)
            bufs = self._buffers_for(b)
            self._prepare(plan, bufs)
            full = b == self.settings.batch_size
            if self.graphs and full and self._warm:
                if self._captured is None:
                    self._captured = self._stream.capture(lambda: self._body(bufs))
                self._captured.replay()
            else:
                self._body(bufs)
                self._warm = self._warm or full
            seen += b
            if on_step:
                on_step(b)
        loss_sum, credit = last.to_host(self.stats)
        return float(loss_sum) / max(seen, 1), float(credit) / max(seen, 1)

    def close(self) -> None:
        """Release the training set and per-step arrays, and leave the shared stream."""
        if self._stream is not None:
            self._stream.close()
        self._stream = self._captured = None
        self._buffers.clear()
        self._ready = False

    # -- the device path ------------------------------------------------------------------

    def _setup(self) -> None:
        if self._ready:
            return
        net = self.net
        if self.graphs:
            self._stream = SharedStream(net.backends)
        first, last = net.backends[0], net.backends[-1]
        self.x_dev = first.from_host(np.ascontiguousarray(self.x, dtype=net.dtype))
        self.y_dev = first.from_host(self.y.astype(np.int32))
        self.stats = last.zeros((2,), net.dtype)
        self._ready = True

    def _buffers_for(self, b: int) -> _Buffers:
        if b not in self._buffers:
            first, last, dt = self.net.backends[0], self.net.backends[-1], self.net.dtype
            ints = [first.zeros((b,), "int32") for _ in range(7)]
            self._buffers[b] = _Buffers(*ints, first.zeros((b,), dt), last.zeros((b,), "int32"),
                                        last.zeros((b,), "int32"), last.zeros((b,), dt))
        return self._buffers[b]

    def _prepare(self, plan: BatchPlan, bufs: _Buffers) -> None:
        """The host's part of a step: its choices into device arrays, the optimiser's
        scalars, the network's per-step keys."""
        first, last, dt = self.net.backends[0], self.net.backends[-1], self.net.dtype
        first.write(bufs.index, plan.index)
        first.write(bufs.start, plan.start)
        if self.masks:
            for name in ("f0", "fw", "t0", "tw"):
                first.write(getattr(bufs, name), getattr(plan, name))
        la = self.y[plan.index].astype(np.int32)
        lam = plan.lam.astype(dt)
        if self.mixup:
            first.write(bufs.perm, plan.perm)
            first.write(bufs.lam_x, lam)
        last.write(bufs.la, la)
        last.write(bufs.lb, la[plan.perm])
        last.write(bufs.lam, lam)
        self.opt.prepare(self.net)
        self.net.begin_step()

    def _body(self, bufs: _Buffers) -> None:
        """The device's part of a step (what a graph captures): nothing read back."""
        first = self.net.backends[0]
        xb, _ = first.gather_batch(self.x_dev, self.y_dev, bufs.index, bufs.start, self.width)
        if self.masks:
            xb = first.mask_spans(xb, bufs.f0, bufs.fw, bufs.t0, bufs.tw)
        if self.mixup:
            xb = first.mix(xb, bufs.perm, bufs.lam_x)
        self.net.device_step(xb, bufs.la, bufs.lb, bufs.lam, self.stats)
        self.opt.apply(self.net)

    # -- the host path --------------------------------------------------------------------

    def _host_epoch(self, plans, lrs, on_step) -> tuple[float, float]:
        loss_sum, credit, seen = 0.0, 0.0, 0
        for plan, lr in zip(plans, lrs):
            self.opt.lr = lr
            xb, la, lb, lam = assemble_on_host(self.x, self.y, plan, self.width)
            loss, probs = self.net.loss_and_grads_pairs(xb, la, lb, lam)
            self.opt.step(self.net)
            pred = probs.argmax(axis=1)
            loss_sum += loss * len(la)
            credit += float((lam * (pred == la) + (1 - lam) * (pred == lb)).sum())
            seen += len(la)
            if on_step:
                on_step(len(la))
        return loss_sum / max(seen, 1), credit / max(seen, 1)
