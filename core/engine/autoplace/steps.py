"""Timing whole training steps under several placements, interleaved, so that
drifting machine load hits every placement alike."""
from __future__ import annotations

import time

import numpy as np

from genrecnn.engine.architectures import build_network
from genrecnn.engine.optim import make_optimizer


def clone_network(network):
    """A fresh network of the same layers, shapes and dtype (new weights; for timing)."""
    return build_network(network.config(), network.input_shape, network.n_classes,
                         dtype=network.dtype)


def time_plans(make_network, plans: dict[str, list[str]], reg, batch_size: int,
               optimizer: str | None, *, reps: int = 5, warmup: int = 2, seed: int = 0
               ) -> dict[str, list[float]]:
    """Seconds per training step (loss, gradients, optimiser step, synchronised) of a
    network from ``make_network()`` under each plan, timed in interleaved rounds so
    that drifting machine load hits every plan alike."""
    steps = {}
    for label, plan in plans.items():
        net = make_network()
        net.place(list(plan), registry=reg)
        opt = make_optimizer(optimizer or "sgd")
        used = list({id(b): b for b in net.backends}.values())
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((batch_size, *net.input_shape)).astype(net.dtype)
        y = rng.integers(0, net.n_classes, batch_size).astype(np.int32)

        def step(net=net, opt=opt, used=used, x=x, y=y):
            net.loss_and_grads(x, y)
            opt.step(net)
            for b in used:
                b.synchronize()
        for _ in range(warmup):
            step()
        steps[label] = step
    samples: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(reps):
        for label, step in steps.items():
            t0 = time.perf_counter()
            step()
            samples[label].append(time.perf_counter() - t0)
    return samples
