"""Carrying out training steps: the batch a plan names, the loss, the gradients and
the update, for one network and its optimiser.

The host path assembles each batch with NumPy and sends it to the first
layer's backend; it works with any placement and any backend.
"""
from __future__ import annotations

import numpy as np

from genrecnn.run.batches import assemble_on_host


class StepRunner:
    """Runs the steps of an epoch and returns its mean loss and accuracy."""

    def __init__(self, network, optimizer, x: np.ndarray, y: np.ndarray, settings):
        self.net, self.opt, self.x, self.y = network, optimizer, x, y
        self.settings = settings
        self.width = network.input_shape[1]

    def run_epoch(self, plans, lrs, on_step=None) -> tuple[float, float]:
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

    def close(self) -> None:
        """Release what the runner holds on the backends (nothing on the host path)."""
