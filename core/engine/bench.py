"""Timing layers and transfers on any backend, through the op contract only.

The dissertation (Cangea 2016, Figures 4.10-4.19) found that the fastest device
depends on the layer and its input size. This module measures exactly that:
one layer's forward, backward and parameter update on one backend at one input
shape, and the cost of moving an array between two backends (or the host).
Layers are the real ones from :mod:`genrecnn.engine.layers`, built from their
configs, so a measurement times the code a network runs. Every timing brackets
the call with ``backend.synchronize()`` so queued GPU work is counted.

:mod:`genrecnn.engine.autoplace` builds its placement tables from these functions;
:mod:`genrecnn.engine.sweeps` runs them over sizes or an architecture's shapes for
``genrecnn bench``.
"""
from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass

import numpy as np

from genrecnn.errors import GenrecnnError
from genrecnn.engine.layers import Layer, layer_from_config
from genrecnn.engine.optim import make_optimizer

HOST = "host"

# Defaults shared by the CLI and autoplace: a warm-up call (kernel compilation,
# allocator pools), then up to ``reps`` timed samples or ``budget`` seconds.
REPS, WARMUP, BUDGET = 5, 1, 0.5
# Calls shorter than TARGET seconds are timed in runs of up to MAX_INNER calls.
TARGET, MAX_INNER = 2e-3, 32


@dataclass
class Timing:
    """Wall-clock samples of one repeated call, in seconds."""

    samples: list[float]
    abandoned: bool = False      # stopped after one sample over ``abandon_after``

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p25(self) -> float:
        return float(np.percentile(self.samples, 25))

    @property
    def p75(self) -> float:
        return float(np.percentile(self.samples, 75))

    @property
    def reps(self) -> int:
        return len(self.samples)

    def as_dict(self) -> dict:
        return {"median_s": self.median, "p25_s": self.p25, "p75_s": self.p75, "reps": self.reps,
                **({"abandoned": True} if self.abandoned else {})}


@dataclass
class LayerTiming:
    """Forward, backward and (for layers with parameters) update time on one backend.

    ``pruned``: the forward, or forward and backward, passed ``abandon_after``,
    so the rest was not timed and ``total`` is a lower bound.
    """

    backend: str
    forward: Timing
    backward: Timing | None
    update: Timing | None = None
    pruned: bool = False

    @property
    def total(self) -> float:
        """Median time of one training step's share of this layer."""
        return sum(t.median for t in self.phases().values())

    def phases(self) -> dict[str, Timing]:
        out = {"forward": self.forward, "backward": self.backward, "update": self.update}
        return {k: v for k, v in out.items() if v is not None}


def time_call(fn, sync, reps: int = REPS, warmup: int = WARMUP, budget: float = BUDGET,
              abandon_after: float | None = None, target: float = TARGET) -> Timing:
    """Time ``fn()`` on a backend whose queued work ``sync()`` waits for.

    ``warmup`` untimed calls (compilation, allocator pools), then one timed call
    with its sync. Calls shorter than ``target`` seconds are then timed in runs
    of several calls and one sync, per call: a layer in a network is launched
    behind the previous one without a sync in between, so a per-call sync would
    charge device backends a round trip the network never pays. Up to ``reps``
    samples, stopping early (after at least one) once ``budget`` seconds have
    passed, so slow calls cost two runs, not six. If the first timed call takes
    longer than ``abandon_after``, stop there (``abandoned``): the caller only
    needed to know it is that slow.
    """
    sync()
    for _ in range(max(0, warmup)):
        fn()
        sync()
    t0 = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - t0
    if abandon_after is not None and first > abandon_after:
        return Timing([first], abandoned=True)
    inner = 1 if first >= target else min(MAX_INNER, max(1, int(target / max(first, 1e-7))))
    samples: list[float] = [first] if inner == 1 else []
    start = t0
    while len(samples) < max(1, reps) and not (samples and time.perf_counter() - start > budget):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        samples.append((time.perf_counter() - t0) / inner)
    return Timing(samples)


@functools.lru_cache(maxsize=3)
def _sample(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A read-only array uniform in [-1, 1) to time ops on.

    Drawing a large activation takes longer than timing the layer it feeds, so
    at most 2^20 values are drawn and repeated to fill the shape (the timing
    does not depend on the values), and the last few shapes are kept: every
    backend and move at a boundary is timed on the same array (backends copy
    it in ``from_host``).
    """
    size = int(np.prod(shape))
    a = np.empty(size, dtype=dtype)
    filled = min(size, 1 << 20)
    a[:filled] = np.random.default_rng(0).random(filled, dtype=np.dtype(dtype)) * 2 - 1
    while filled < size:                          # doubling copies
        n = min(filled, size - filled)
        a[filled:filled + n] = a[:n]
        filled += n
    a = a.reshape(shape)
    a.flags.writeable = False
    return a


class _OneLayer:
    """The piece of the Network interface an optimiser's ``step`` uses."""

    def __init__(self, layer: Layer, be):
        self.layer, self.be = layer, be

    def parameters(self):
        for key in self.layer.params:
            yield self.layer, key, self.be

    def parameter_groups(self):
        return [(self.be, [(self.layer, key) for key in self.layer.params])] \
            if self.layer.params else []


def measure_layer(be, config: dict, input_shape: tuple[int, ...], batch: int, dtype: str, *,
                  optimizer: str | None = None, reps: int = REPS, warmup: int = WARMUP,
                  budget: float = BUDGET, seed: int = 0,
                  abandon_after: float | None = None, precision: str = "fp32") -> LayerTiming:
    """Time a fresh layer built from ``config`` on backend ``be``.

    ``input_shape`` is per example; the batch is ``batch`` random examples.
    With ``optimizer`` (``sgd`` or ``adam``) a layer with parameters also times
    one optimiser step over its parameters, as a training step runs it. With
    ``abandon_after``, a forward, or forward and backward, slower than that
    (after a warm-up) ends the measurement early: the result is ``pruned``.
    ``precision``: of a conv or dense layer's products.
    """
    rng = np.random.default_rng(seed)
    layer = layer_from_config(config)
    layer.name = config.get("name") or "bench"
    layer.use_precision(precision)
    layer.build(tuple(input_shape), rng, dtype)
    layer.place(None, be)
    layer.begin_step(be, 0)
    x = be.from_host(_sample((batch, *layer.input_shape), dtype))
    if layer.kind == "softmax":
        labels = be.from_host(rng.integers(0, layer.output_shape[0], batch).astype(np.int32))
        fwd = lambda: layer.forward_loss(be, x, labels)   # noqa: E731
        bwd = lambda: layer.backward(be)                   # noqa: E731
    else:
        dy = be.from_host(_sample((batch, *layer.output_shape), dtype))
        fwd = lambda: layer.forward(be, x, True)           # noqa: E731
        bwd = lambda: layer.backward(be, dy)               # noqa: E731
    sync = be.synchronize
    forward = time_call(fwd, sync, reps, warmup, budget, abandon_after)
    if forward.abandoned:
        return LayerTiming(be.name, forward, None, None, pruned=True)
    backward = time_call(bwd, sync, reps, warmup, budget,
                         None if abandon_after is None else abandon_after - forward.median)
    if backward.abandoned:
        return LayerTiming(be.name, forward, backward, None, pruned=True)
    update = None
    if optimizer and layer.params:
        opt = make_optimizer(optimizer, lr=1e-6)
        one = _OneLayer(layer, be)
        update = time_call(lambda: opt.step(one), sync, reps, warmup, budget)
    return LayerTiming(be.name, forward, backward, update)


def endpoint_name(be) -> str:
    return HOST if be is None else be.name


def measure_staged_upload(dst, shape: tuple[int, ...], dtype: str, *, reps: int = REPS,
                          warmup: int = WARMUP, budget: float = BUDGET) -> Timing:
    """Time one upload of ``shape`` from page-locked memory into an array on ``dst``
    (the staging ops: what the stream path pays per batch), to its end."""
    host = dst.pinned_empty(tuple(shape), dtype)
    host[...] = _sample(tuple(shape), dtype)
    slot = dst.zeros(tuple(shape), dtype)
    return time_call(lambda: dst.upload_finished(dst.upload_async(host, slot)),
                     dst.synchronize, reps, warmup, budget)


def measure_transfer(src, dst, shape: tuple[int, ...], dtype: str, *, reps: int = REPS,
                     warmup: int = WARMUP, budget: float = BUDGET) -> Timing:
    """Time moving one array of ``shape`` from ``src`` to ``dst`` (None = the host).

    Backend to backend is ``dst.adopt(x, src)``, exactly what the network does
    at a placement boundary; host to backend is ``from_host``, backend to host
    ``to_host``. Both sides are synchronised around each copy.
    """
    if src is None and dst is None:
        raise GenrecnnError("a transfer needs a backend on at least one side")
    a = _sample(tuple(shape), dtype)
    if src is None:
        fn, syncs = (lambda: dst.from_host(a)), (dst.synchronize,)
    else:
        x = src.from_host(a)
        if dst is None:
            fn, syncs = (lambda: src.to_host(x)), (src.synchronize,)
        else:
            fn, syncs = (lambda: dst.adopt(x, src)), (src.synchronize, dst.synchronize)

    def sync():
        for s in syncs:
            s()
    return time_call(fn, sync, reps, warmup, budget)
