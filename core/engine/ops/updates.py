"""The contract's parameter updates, in place: one parameter a call (``sgd_update``,
``adam_update``) or every parameter in one call with the scalars read from the device
(``sgd_update_many``, ``adam_update_many``), so a captured step picks up each step's rate.

Conventions in :mod:`genrecnn.engine.ops`; every op here changes arrays in place and
returns None.
"""
from __future__ import annotations


class UpdateOps:
    """sgd_update, adam_update; sgd_update_many, adam_update_many."""

    # -- parameter updates (in place) --------------------------------------------------

    def sgd_update(self, param, grad, velocity, lr: float, momentum: float,
                   weight_decay: float) -> None:
        """SGD with momentum, in place on ``param`` and ``velocity``:

        ``velocity = momentum * velocity - lr * (grad + weight_decay * param)``;
        ``param += velocity``.
        """
        raise self._unsupported("sgd_update")

    def adam_update(self, param, grad, m, v, step: int, lr: float, beta1: float,
                    beta2: float, eps: float, weight_decay: float,
                    decoupled_weight_decay: float = 0.0) -> None:
        """Adam (Kingma and Ba), with AdamW's decoupled weight decay (Loshchilov and
        Hutter), in place on ``param``, ``m`` and ``v``; ``step`` counts from 1:

        ``g = grad + weight_decay * param``; ``m = beta1 m + (1 - beta1) g``;
        ``v = beta2 v + (1 - beta2) g**2``;
        ``param -= lr * ((m / (1 - beta1**step)) / (sqrt(v / (1 - beta2**step)) + eps)
        + decoupled_weight_decay * param)`` (``param`` on the right: its value before
        the call).
        """
        raise self._unsupported("adam_update")

    # -- all parameters in one call ----------------------------------------------------

    def sgd_update_many(self, params: list, grads: list, velocities: list, hyper) -> None:
        """:meth:`sgd_update` on every (param, grad, velocity) triple, in place, with the
        scalars read from the device array ``hyper`` = [lr, momentum, weight_decay]
        (the params' dtype), so a captured step picks up each step's rate."""
        raise self._unsupported("sgd_update_many")

    def adam_update_many(self, params: list, grads: list, ms: list, vs: list, hyper) -> None:
        """:meth:`adam_update` on every (param, grad, m, v), in place, with ``hyper`` =
        [lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay,
        1 - beta1**step, 1 - beta2**step] (the params' dtype)."""
        raise self._unsupported("adam_update_many")
