"""One cnn2d training step on a backend and the distance of its gradients from another
backend's: what the GPU test and the CPU-emulator test of the precisions both compare."""
from __future__ import annotations

import numpy as np

from genrecnn.engine.architectures import build_network, load_architecture

# How far a CUDA backend's step may be from NumPy's at each precision (gradient_gaps, and
# the loss relative to its own size): the order of the sums, and at tf32 / bf16 the
# rounding of an operand near a tie that this order may flip.
TOLERANCE = {"fp32": 1e-4, "tf32": 1e-3, "bf16": 1e-2}


def cnn2d_step(backend: str, precision: str, registry=None, fuse: bool = True):
    """(loss, {"layer/param": gradient}) of one cnn2d step on ``backend`` at ``precision``."""
    net = build_network(load_architecture("cnn2d"), (32, 48), 4, seed=0, precision=precision)
    net.fuse = fuse
    net.place(backend, registry)
    x = np.random.default_rng(3).standard_normal((8, 32, 48)).astype(np.float32)
    loss, _ = net.loss_and_grads(x, np.arange(8) % 4)
    return loss, {f"{layer.name}/{k}": net.backends[i].to_host(g)
                  for i, layer in enumerate(net.layers) for k, g in layer.grads.items()}


def gradient_gaps(got: dict, want: dict) -> dict:
    """Each gradient's max |got - want| over its own scale, or, where that is far below the
    network's, over a hundredth of the network's largest gradient: a convolution's bias
    before batch norm has no gradient (the norm subtracts the mean), so both sides give
    rounding noise there, which no relative measure of its own can judge."""
    assert got.keys() == want.keys() and len(got) > 10
    floor = 1e-2 * max(np.abs(w).max() for w in want.values())
    return {k: float(np.abs(got[k] - w).max() / max(np.abs(w).max(), floor))
            for k, w in want.items()}
