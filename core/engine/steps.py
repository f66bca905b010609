"""Carrying out training steps: the batch a plan names, the loss, the gradients and
the update, for one network and its optimiser.

Three paths, with identical results:

* device: the training set is uploaded once to the first layer's backend
  (when it implements the ``batch`` ops, the output layer's the ``train_loss``
  ops, and the set fits ``resident_budget``), each step's choices are written to
  small device arrays, the batch is cut, masked and mixed there, and the loss
  accumulates on the output layer's backend, read once per epoch. When every
  backend of the placement can, the whole step (batch, forward, loss, backward,
  update) is captured once as a CUDA graph and replayed (``graphs``; off for
  debugging).
* stream: the same steps for a set larger than the budget, when the first
  layer's backend also implements the ``staging`` ops: the host cuts each
  batch's crops into one of two page-locked buffers and uploads it into one of
  two device slots on a side stream while the previous step computes
  (:mod:`genrecnn.engine.feed`); the step then cuts its batch from the slot (index
  ``0..B-1``, start 0) and runs exactly as on the device path, the loss still
  read once per epoch. With graphs, one graph per slot is captured and the one
  whose slot holds the batch is replayed.
* host: NumPy assembles each batch and sends it to the first layer's backend,
  reading the loss back every step; any placement and any backend.

The runner reaches the training set only through :mod:`genrecnn.engine.items` (item
count, frames, labels, crops; the whole array only to upload it once). Each step's
body calls the backward pass and the optimiser's update separately, so a gradient
sum across processes can go between them. Auto placement
(:mod:`genrecnn.engine.autoplace.timing`) times candidate placements with this same
runner, step by step (:meth:`StepRunner.start_epoch`, :meth:`StepRunner.step`).

Data-parallel (``world``: the ranks of ``mpirun -n N``): every rank draws the same
global plans and carries out its share of each batch's rows (:func:`shard`); between
the backward pass and the update, each backend holding parameters sums their gradients
over the ranks in one fused buffer (the ``collective`` op), each rank weighted by its
share, so every rank applies the global batch's gradient and the replicas stay equal.
Batch normalisation uses each rank's own batch statistics (as PyTorch DDP does); the
running statistics are averaged over the ranks at the end of every epoch. A global
batch with fewer examples than ranks (an epoch's short tail) is left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrecnn.engine.batches import BatchPlan, assemble_on_host, shard
from genrecnn.engine.feed import BatchFeed
from genrecnn.engine.graphs import SharedStream, graph_obstacle
from genrecnn.engine.layers import layer_seed
from genrecnn.errors import BackendError

RESIDENT_BUDGET = 4 << 30        # bytes of training set uploaded once (default)


def fits_resident(values: int, dtype: str, budget: int) -> bool:
    """Whether a training set of ``values`` numbers in ``dtype`` is uploaded once
    (else it is streamed, or fed from the host)."""
    return values * np.dtype(dtype).itemsize <= budget


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


@dataclass
class _Epoch:
    """The steps of the epoch under way and what they have added up."""

    plans: list                  # this rank's share of each step's batch
    lrs: list
    weights: list                # each share's fraction of its global batch
    full: list                   # whether each step's global batch is full (graphs replay)
    seen: int = 0
    loss_sum: float = 0.0        # the host path's sums (the device paths keep theirs there)
    credit: float = 0.0


class StepRunner:
    """Runs the steps of an epoch and returns its mean loss and accuracy.

    The path (:attr:`path`: "graph" or "device", "stream", "host"; see the module notes)
    is chosen once, from the backends of the first and output layers and whether the
    training set (``items``, see :mod:`genrecnn.engine.items`) fits ``resident_budget``
    bytes: a set that fits is uploaded once, a larger one streams where the first
    backend has the ``staging`` ops (a budget of 0 forces that), and anything else is
    assembled on the host. ``graphs`` (default on) captures the steps of the device and
    stream paths as CUDA graphs where every backend of the placement can (:attr:`graphs`
    says whether they are). ``settings``: batch size, mixup, masks and label smoothing (a
    :class:`~genrecnn.engine.batches.StepOptions` or a run's settings). ``stream``: a
    :class:`SharedStream` several runners share (their owner closes it); by default the
    runner makes its own. ``world``: a :class:`genrecnn.world.World` to train
    data-parallel over (None, or a world of one without a communicator: alone).
    """

    def __init__(self, network, optimizer, items, settings, *, graphs: bool = True,
                 resident_budget: int = RESIDENT_BUDGET, stream: SharedStream | None = None,
                 world=None):
        self.net, self.opt, self.items = network, optimizer, items
        self.world = world if world is not None and world.comm is not None else None
        self.settings = settings
        self.width = network.input_shape[1]
        self.masks = settings.freq_mask > 0 or settings.time_mask > 0
        self.mixup = settings.mixup > 0
        self.smoothing = float(settings.label_smoothing)
        network.ensure_placed()
        first, last = network.backends[0], network.backends[-1]
        if self.smoothing and not last.supports("train_loss"):
            raise BackendError(f"label smoothing needs the 'train_loss' ops on the output "
                               f"layer's backend, which {last.name!r} lacks; place the softmax "
                               f"layer on numpy, cupy or pycuda (softmax=numpy)")
        batched = first.supports("batch") and last.supports("train_loss")
        fits = items.uploadable and fits_resident(items.values, network.dtype, resident_budget)
        self.device = batched and fits
        self.streaming = batched and not fits and first.supports("staging")
        self.graphs = (graphs and (self.device or self.streaming)
                       and not graph_obstacle(network.backends))
        self._ready = False
        self._stream, self._own_stream = stream, stream is None
        self._feed: BatchFeed | None = None
        self._captured: dict[int, object] = {}     # slot (0 on the device path) -> graph
        self._warm = False
        self._buffers: dict[int, _Buffers] = {}
        self._epoch: _Epoch | None = None
        if self.world is not None:
            self._join_world()

    @property
    def path(self) -> str:
        """How steps run: "graph", "device", "stream" (graphs or not) or "host"."""
        if self.streaming:
            return "stream"
        return "graph" if self.graphs else "device" if self.device else "host"

    # -- epochs -------------------------------------------------------------------------

    def run_epoch(self, plans: list[BatchPlan], lrs: list[float], on_step=None
                  ) -> tuple[float, float]:
        """Every step of ``plans`` (learning rate ``lrs[i]`` for step i); (mean loss,
        mean accuracy). ``on_step(batch size)`` after each step."""
        self.start_epoch(plans, lrs)
        ep = self._epoch
        for i, plan in enumerate(ep.plans):
            self.step(i)
            if on_step:                                # the global batch's examples
                on_step(round(len(plan.index) / ep.weights[i]))
        return self.finish_epoch()

    def start_epoch(self, plans: list[BatchPlan], lrs: list[float]) -> None:
        """Begin an epoch of ``plans``: zero its sums, start the first upload."""
        self._epoch = self._local_epoch(plans, lrs)
        if not (self.device or self.streaming):
            return
        self._setup()
        self.net.backends[-1].write(self.stats, np.zeros(2, dtype=self.net.dtype))
        if self._feed is not None and self._epoch.plans:
            self._feed.start(0, self._epoch.plans[0])
            if len(self._epoch.plans) > 1:
                self._feed.prefetch(1, self._epoch.plans[1])

    def step(self, i: int) -> None:
        """Queue step ``i`` of the epoch (its upload awaited, the next one started on the
        stream path); nothing is read back except on the host path."""
        ep = self._epoch
        plan = ep.plans[i]
        self.opt.lr = ep.lrs[i]
        ep.seen += len(plan.index)
        if not (self.device or self.streaming):
            self._host_step(plan, ep, ep.weights[i])
            return
        b = len(plan.index)
        bufs, feed, slot = self._buffers_for(b), self._feed, None
        if feed is not None:
            slot = feed.wait(i)                      # the step after upload i, and
            if i + 1 < len(ep.plans):                # upload i + 1 after the steps before
                feed.start(i + 1, ep.plans[i + 1])
            if i + 2 < len(ep.plans):                # the cut of i + 2 in the background
                feed.prefetch(i + 2, ep.plans[i + 2])
        self._prepare(plan, bufs)
        full, weight = ep.full[i], ep.weights[i]
        if self.graphs and full and self._warm:
            key = i % 2 if feed is not None else 0
            if key not in self._captured:
                self._captured[key] = self._stream.capture(
                    lambda: self._body(bufs, slot, weight))
            self._captured[key].replay()
        else:
            self._body(bufs, slot, weight)
            self._warm = self._warm or full

    def finish_epoch(self) -> tuple[float, float]:
        """The epoch's mean loss and accuracy (the device paths read them here, once)."""
        ep, self._epoch = self._epoch, None
        if self.device or self.streaming:
            ep.loss_sum, ep.credit = (float(v) for v in self.net.backends[-1].to_host(self.stats))
        if self.world is not None:
            ep.loss_sum, ep.credit, ep.seen = self.world.sum(
                np.array([ep.loss_sum, ep.credit, ep.seen], dtype=np.float64))
            self._average_state()
        return ep.loss_sum / max(ep.seen, 1), ep.credit / max(ep.seen, 1)

    def close(self) -> None:
        """Release the training set (or the staging buffers and slots) and per-step
        arrays, and leave the shared stream (if this runner made it)."""
        if self._feed is not None:
            self._feed.close()
        if self._stream is not None and self._own_stream:
            self._stream.close()
            self._stream = None
        self._feed = None
        self._captured.clear()
        self._buffers.clear()
        self._ready = False

    # -- the device path ------------------------------------------------------------------

    def _setup(self) -> None:
        if self._ready:
            return
        net = self.net
        if self.graphs and self._stream is None:
            self._stream = SharedStream(net.backends)
        first, last = net.backends[0], net.backends[-1]
        if self.streaming:
            self._feed = BatchFeed(first, self.items, self.settings.batch_size, self.width,
                                   net.dtype)
        else:
            self.x_dev = first.from_host(np.ascontiguousarray(self.items.whole(),
                                                              dtype=net.dtype))
            self.y_dev = first.from_host(self.items.labels.astype(np.int32))
        self.stats = last.zeros((2,), net.dtype)
        self._ready = True

    def _buffers_for(self, b: int) -> _Buffers:
        if b not in self._buffers:
            first, last, dt = self.net.backends[0], self.net.backends[-1], self.net.dtype
            ints = [first.zeros((b,), "int32") for _ in range(7)]
            self._buffers[b] = _Buffers(*ints, first.zeros((b,), dt), last.zeros((b,), "int32"),
                                        last.zeros((b,), "int32"), last.zeros((b,), dt))
            if self.streaming:                     # a slot's rows in order, each from frame 0
                first.write(self._buffers[b].index, np.arange(b, dtype=np.int32))
        return self._buffers[b]

    def _prepare(self, plan: BatchPlan, bufs: _Buffers) -> None:
        """The host's part of a step: its choices into device arrays, the optimiser's
        scalars, the network's per-step keys."""
        first, last, dt = self.net.backends[0], self.net.backends[-1], self.net.dtype
        if not self.streaming:
            first.write(bufs.index, plan.index)
            first.write(bufs.start, plan.start)
        if self.masks:
            for name in ("f0", "fw", "t0", "tw"):
                first.write(getattr(bufs, name), getattr(plan, name))
        la = self.items.labels[plan.index].astype(np.int32)
        lam = plan.lam.astype(dt)
        if self.mixup:
            first.write(bufs.perm, plan.perm)
            first.write(bufs.lam_x, lam)
        last.write(bufs.la, la)
        last.write(bufs.lb, la[plan.perm])
        last.write(bufs.lam, lam)
        self.opt.prepare(self.net)
        self.net.begin_step()

    def _body(self, bufs: _Buffers, slot=None, weight: float = 1.0) -> None:
        """The device's part of a step (what a graph captures): nothing read back. The
        batch is cut from the resident set, or on the stream path from ``slot``."""
        first = self.net.backends[0]
        data, labels = ((self.x_dev, self.y_dev) if slot is None
                        else (slot, self._feed.labels))
        xb, _ = first.gather_batch(data, labels, bufs.index, bufs.start, self.width)
        if self.masks:
            xb = first.mask_spans(xb, bufs.f0, bufs.fw, bufs.t0, bufs.tw)
        if self.mixup:
            xb = first.mix(xb, bufs.perm, bufs.lam_x)
        self.net.device_step(xb, bufs.la, bufs.lb, bufs.lam, self.stats,   # to gradients,
                             self.smoothing)
        self._sum_gradients(weight)                                         # over the ranks,
        self.opt.apply(self.net)                                            # then the update

    # -- the host path --------------------------------------------------------------------

    def _host_step(self, plan: BatchPlan, ep: _Epoch, weight: float) -> None:
        xb, la, lb, lam = assemble_on_host(self.items, plan, self.width)
        loss, probs = self.net.loss_and_grads_pairs(xb, la, lb, lam,    # backward, the sum
                                                    self.smoothing)
        self._sum_gradients(weight)                                      # over the ranks,
        self.opt.step(self.net)                                          # then the update
        pred = probs.argmax(axis=1)
        ep.loss_sum += loss * len(la)
        ep.credit += float((lam * (pred == la) + (1 - lam) * (pred == lb)).sum())

    # -- data-parallel --------------------------------------------------------------------

    def _join_world(self) -> None:
        """Check that every backend holding parameters can sum them over the ranks, and
        give ranks other than 0 their own dropout masks."""
        for be, _ in self.net.parameter_groups():
            if not be.supports("collective"):
                raise BackendError(f"backend {be.name!r} cannot sum gradients over MPI ranks "
                                   f"(no 'collective' op); place the network on a backend "
                                   f"that can (numpy, cupy, pycuda) or run one process")
        if self.world.rank:
            for layer in self.net.layers:
                layer.seed = layer_seed(layer.seed, 1000 + self.world.rank)

    def _local_epoch(self, plans: list[BatchPlan], lrs: list[float]) -> _Epoch:
        """The epoch as this rank carries it out: its share of every global batch."""
        full = [len(p.index) == self.settings.batch_size for p in plans]
        if self.world is None:
            return _Epoch(list(plans), list(lrs), [1.0] * len(plans), full)
        keep = [i for i, p in enumerate(plans) if len(p.index) >= self.world.size]
        shares = [shard(plans[i], self.world.share(len(plans[i].index))) for i in keep]
        return _Epoch(shares, [lrs[i] for i in keep],
                      [len(sh.index) / len(plans[i].index) for sh, i in zip(shares, keep)],
                      [full[i] for i in keep])

    def _sum_gradients(self, weight: float) -> None:
        """Every parameter's gradient summed over the ranks (one fused call a backend)."""
        if self.world is None:
            return
        for be, items in self.net.parameter_groups():
            be.sum_across([layer.grads[key] for layer, key in items], weight, self.world)

    def _average_state(self) -> None:
        average_state(self.net, self.world)


def average_state(network, world) -> None:
    """Batch normalisation's running statistics averaged over the ranks of ``world``."""
    for layer, be in zip(network.layers, network.backends):
        if layer.state:
            be.sum_across(list(layer.state.values()), 1.0 / world.size, world)
