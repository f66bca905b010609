"""Timing whole training steps under several placements, interleaved, so that
drifting machine load hits every placement alike. Each placement's steps are run
by the step runner training uses (:class:`genrecnn.engine.steps.StepRunner`): one
CUDA graph replay per step where the placement can capture it, the batch resident
or, for a training set streamed from the host, cut on the host and uploaded beside
the previous step; so auto placement compares what users get."""
from __future__ import annotations

import time

import numpy as np

from genrecnn.engine.architectures import build_network
from genrecnn.engine.batches import StepOptions, plan_epoch
from genrecnn.engine.graphs import SharedStream, distinct, graph_obstacle
from genrecnn.engine.items import ArrayItems
from genrecnn.engine.optim import make_optimizer
from genrecnn.engine.steps import RESIDENT_BUDGET, StepRunner

# Untimed steps before the warm-up proper: one run op by op, then one capture per
# slot (two on the stream path), so no timed step includes a capture.
CAPTURE_STEPS = 3


def clone_network(network):
    """A fresh network of the same layers, shapes, dtype and precision (new weights; for
    timing)."""
    return build_network(network.config(), network.input_shape, network.n_classes,
                         dtype=network.dtype, precision=network.precision)


def _runner(net, optimizer: str | None, batch_size: int, streamed: bool, stream, seed: int):
    """A step runner over one batch of random items, set up as training sets it up for
    a training set that fits the device (or, ``streamed``, one that does not)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, *net.input_shape)).astype(net.dtype)
    y = rng.integers(0, net.n_classes, batch_size)
    capturable = stream is not None and not graph_obstacle(net.backends)
    return StepRunner(net, make_optimizer(optimizer or "sgd"), ArrayItems(x, y),
                      StepOptions(batch_size), graphs=capturable,
                      resident_budget=0 if streamed else RESIDENT_BUDGET,
                      stream=stream if capturable else None)


def _start(runner, steps: int, seed: int) -> None:
    """Begin an epoch of ``steps`` full batches (one shuffled plan each) on ``runner``."""
    rng = np.random.default_rng(seed)
    n, width = len(runner.items), runner.width
    plans = [plan_epoch(n, runner.items.n_mels, width, width, runner.settings, rng)[0]
             for _ in range(steps)]
    runner.start_epoch(plans, [runner.opt.lr] * steps)


def _synchronised_step(runner, i: int) -> None:
    runner.step(i)
    for b in distinct(runner.net.backends):
        b.synchronize()


def _session(networks):
    """One shared stream for every network that can run as CUDA graphs (None if none)."""
    backends = [b for n in networks if not graph_obstacle(n.backends) for b in n.backends]
    return SharedStream(backends) if backends else None


def time_plans(make_network, plans: dict[str, list[str]], reg, batch_size: int,
               optimizer: str | None, *, reps: int = 5, warmup: int = 2, seed: int = 0,
               streamed: bool = False) -> dict[str, list[float]]:
    """Seconds per training step (batch, loss, gradients, optimiser step, synchronised) of
    a network from ``make_network()`` under each plan, each run by the training step
    runner (CUDA graphs where the placement allows; the batch resident, or streamed
    beside each step when ``streamed``), timed in interleaved rounds so that drifting
    machine load hits every plan alike. Every runner takes ``CAPTURE_STEPS + warmup``
    untimed steps first."""
    nets = {}
    for label, plan in plans.items():
        nets[label] = make_network()
        nets[label].place(list(plan), registry=reg)
    session = _session(nets.values())
    runners = {label: _runner(net, optimizer, batch_size, streamed, session, seed)
               for label, net in nets.items()}
    untimed = CAPTURE_STEPS + warmup
    try:
        for runner in runners.values():
            _start(runner, untimed + reps, seed)
        for i in range(untimed):
            for runner in runners.values():
                _synchronised_step(runner, i)
        samples: dict[str, list[float]] = {label: [] for label in runners}
        for i in range(untimed, untimed + reps):
            for label, runner in runners.items():
                t0 = time.perf_counter()
                _synchronised_step(runner, i)
                samples[label].append(time.perf_counter() - t0)
        for runner in runners.values():
            runner.finish_epoch()
    finally:
        for runner in runners.values():
            runner.close()
        if session is not None:
            session.close()
    return samples
