"""Timing whole training steps under several placements, interleaved, so that
drifting machine load hits every placement alike, each run the way training runs
it: a placement whose backends can capture a step does so (one CUDA graph
replay per step), with the batch resident or, for a training set streamed from
the host, the next batch's upload overlapping each step; so auto placement
compares what users get."""
from __future__ import annotations

import time

import numpy as np

from genrecnn.engine.architectures import build_network
from genrecnn.engine.graphs import SharedStream, distinct, graph_obstacle
from genrecnn.engine.optim import make_optimizer


def clone_network(network):
    """A fresh network of the same layers, shapes and dtype (new weights; for timing)."""
    return build_network(network.config(), network.input_shape, network.n_classes,
                         dtype=network.dtype)


def _overlapped_uploads(backend, x):
    """Before each step, what the stream path does (see ``genrecnn.run.feed``): the
    compute waits for the previous upload, and the next batch's copy from page-locked
    memory starts, to run beside the step. Slots the step never reads take the copies."""
    host = backend.pinned_empty(x.shape, str(x.dtype))
    host[...] = x
    slots = [backend.zeros(x.shape, str(x.dtype)) for _ in range(2)]
    state = {"token": None, "i": 0}

    def before_step():
        if state["token"] is not None:
            backend.await_upload(state["token"])
            backend.upload_finished(state["token"])
        state["i"] ^= 1
        state["token"] = backend.upload_async(host, slots[state["i"]])
    return before_step


def _step(net, opt, x, y, session, streamed=False):
    """One synchronised training step of ``net`` as training runs it: with ``session``
    (the shared stream of placements that can be captured, see
    :mod:`genrecnn.engine.graphs`) the step is one CUDA graph replay on a resident
    batch, beside the next batch's upload when ``streamed`` (and the first backend
    has the staging ops); else the batch comes from the host."""
    used = distinct(net.backends)
    first, last = net.backends[0], net.backends[-1]

    def sync():
        for b in used:
            b.synchronize()

    if session is not None:
        x_dev = first.from_host(x)
        la, stats = last.from_host(y), last.zeros((2,), net.dtype)
        lam = last.from_host(np.ones(len(y), dtype=net.dtype))

        def body():
            net.device_step(x_dev, la, la, lam, stats)
            opt.apply(net)
        opt.prepare(net)
        net.begin_step()
        body()                                   # the warm-up: state and kernels exist
        captured = session.capture(body)
        upload = (_overlapped_uploads(first, x) if streamed and first.supports("staging")
                  else None)

        def replay():
            if upload is not None:
                upload()
            opt.prepare(net)
            net.begin_step()
            captured.replay()
            sync()
        return replay

    def host():
        net.loss_and_grads(x, y)
        opt.step(net)
        sync()
    return host


def _session(networks):
    """One shared stream for every network that can run as CUDA graphs (None if none)."""
    backends = [b for n in networks if not graph_obstacle(n.backends) for b in n.backends]
    return SharedStream(backends) if backends else None


def time_plans(make_network, plans: dict[str, list[str]], reg, batch_size: int,
               optimizer: str | None, *, reps: int = 5, warmup: int = 2, seed: int = 0,
               streamed: bool = False) -> dict[str, list[float]]:
    """Seconds per training step (batch, loss, gradients, optimiser step, synchronised) of
    a network from ``make_network()`` under each plan, each run as training runs it
    (CUDA graphs where the placement allows; the batch resident, or uploaded beside
    each step when ``streamed``), timed in interleaved rounds so that drifting machine
    load hits every plan alike."""
    nets = {}
    for label, plan in plans.items():
        nets[label] = make_network()
        nets[label].place(list(plan), registry=reg)
    session = _session(nets.values())
    try:
        steps = {}
        for label, net in nets.items():
            rng = np.random.default_rng(seed)
            x = rng.standard_normal((batch_size, *net.input_shape)).astype(net.dtype)
            y = rng.integers(0, net.n_classes, batch_size).astype(np.int32)
            steps[label] = _step(net, make_optimizer(optimizer or "sgd"), x, y,
                                 session if not graph_obstacle(net.backends) else None,
                                 streamed)
            for _ in range(warmup):
                steps[label]()
        samples: dict[str, list[float]] = {label: [] for label in steps}
        for _ in range(reps):
            for label, step in steps.items():
                t0 = time.perf_counter()
                step()
                samples[label].append(time.perf_counter() - t0)
    finally:
        if session is not None:
            session.close()
    return samples
