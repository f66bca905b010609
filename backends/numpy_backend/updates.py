"""NumPy: the contract's parameter updates (:mod:`genrecnn.engine.ops.updates`), in place,
one parameter at a time or all in one call (``update_many``, the scalars read from the
``hyper`` array)."""
from __future__ import annotations

import numpy as np


def adam_step(param, grad, m, v, lr, beta1, beta2, eps, wd, dwd, bc1, bc2) -> None:
    """Adam / AdamW in place; ``bc1``, ``bc2`` are 1 - beta**step (computed in float64)."""
    g = grad + wd * param if wd else grad
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * (g * g)
    step = (m / bc1) / (np.sqrt(v / bc2) + eps)
    if dwd:
        param *= 1 - lr * dwd
    param -= lr * step


class NumpyUpdateOps:
    """sgd_update, adam_update, sgd_update_many, adam_update_many for :class:`.NumpyBackend`."""

    def sgd_update(self, param, grad, velocity, lr, momentum, weight_decay):
        velocity *= momentum
        velocity -= lr * grad
        if weight_decay:
            velocity -= (lr * weight_decay) * param
        param += velocity

    def adam_update(self, param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay,
                    decoupled_weight_decay=0.0):
        adam_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay,
                  1 - beta1 ** step, 1 - beta2 ** step)

    def sgd_update_many(self, params, grads, velocities, hyper):
        lr, momentum, weight_decay = (float(v) for v in hyper)
        for p, g, v in zip(params, grads, velocities):
            self.sgd_update(p, g, v, lr, momentum, weight_decay)

    def adam_update_many(self, params, grads, ms, vs, hyper):
        lr, beta1, beta2, eps, wd, dwd, bc1, bc2 = (float(v) for v in hyper)
        for p, g, m, v in zip(params, grads, ms, vs):
            adam_step(p, g, m, v, lr, beta1, beta2, eps, wd, dwd, bc1, bc2)
