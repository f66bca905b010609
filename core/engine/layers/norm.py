"""Batch normalisation and dropout: layers that behave differently in training and
inference."""
from __future__ import annotations

import numpy as np

from genrecnn.errors import GenrecnnError, ShapeError
from genrecnn.engine.layers.base import Layer


class BatchNorm(Layer):
    """Per-channel normalisation after a convolution (1-D or 2-D) or a dense layer.

    Training normalises with the batch's statistics and folds them into the
    running ones (``momentum``); inference uses the running ones. ``gamma``
    and ``beta`` are parameters; the running mean and variance are ``state``.
    """

    kind, type = "norm", "batchnorm"
    op = "batchnorm"
    has_params = True
    input_ranks = (1, 2, 3)

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5, name=None):
        super().__init__(name)
        self.momentum, self.eps = float(momentum), float(eps)
        if not 0 <= self.momentum <= 1 or not self.eps > 0:
            raise ShapeError(f"batchnorm needs 0 <= momentum <= 1 and eps > 0, got momentum "
                             f"{momentum}, eps {eps}")

    def config(self):
        return {"type": self.type, "momentum": self.momentum, "eps": self.eps}

    def _init_params(self, rng, dtype):
        c = self.input_shape[0]
        return {"gamma": np.ones(c, dtype=dtype), "beta": np.zeros(c, dtype=dtype)}

    def _init_state(self, dtype):
        c = self.input_shape[0]
        return {"running_mean": np.zeros(c, dtype=dtype), "running_var": np.ones(c, dtype=dtype)}

    def forward(self, be, x, train):
        p, s = self.params, self.state
        if not train:
            return be.batchnorm_infer(x, p["gamma"], p["beta"], s["running_mean"],
                                      s["running_var"], self.eps)
        y, mean, invstd = be.batchnorm_train(x, p["gamma"], p["beta"], self.eps)
        self.fold_statistics(be, x.shape, mean, invstd)
        self._cache = (x, mean, invstd)
        return y

    def fold_statistics(self, be, shape, mean, invstd) -> None:
        """Fold a training batch's statistics (of x of ``shape``) into the running ones;
        also called by the fused block (:mod:`genrecnn.engine.blocks`)."""
        s = self.state
        count = int(np.prod(shape)) // self.input_shape[0]
        be.batchnorm_running_update(s["running_mean"], s["running_var"], mean, invstd, count,
                                    self.momentum, self.eps)

    def backward(self, be, dy):
        x, mean, invstd = self._cache
        dx, self.grads["gamma"], self.grads["beta"] = be.batchnorm_backward(
            x, self.params["gamma"], mean, invstd, dy)
        return dx


class Dropout(Layer):
    """Zeroes each value with probability ``rate`` in training (scaling the rest by
    1 / (1 - rate)); the identity at inference. Each training step draws a new
    mask from the key (this layer's seed, the step), the same on every backend."""

    kind, type = "drop", "dropout"
    op = "dropout"

    def __init__(self, rate: float = 0.5, name=None):
        super().__init__(name)
        self.rate = float(rate)
        if not 0 <= self.rate < 1:
            raise ShapeError(f"dropout rate must be in [0, 1), got {rate}")
        self.key = None

    def config(self):
        return {"type": self.type, "rate": self.rate}

    def begin_step(self, be, step):
        """This step's key (seed, step), int32 [2] holding the two as unsigned 32-bit;
        written into the same array where the backend can (a captured step reads it
        there), else a new one."""
        key = np.array([self.seed & 0xFFFFFFFF, step & 0xFFFFFFFF], dtype=np.uint32).view(np.int32)
        if self.key is not None and be.supports("batch"):
            be.write(self.key, key)
        else:
            self.key = be.from_host(key)

    def forward(self, be, x, train):
        if not train or self.rate == 0:
            return x
        if self.key is None:
            raise GenrecnnError(f"layer {self.name!r}: dropout in training needs a key; "
                                f"call begin_step before the forward pass")
        return be.dropout(x, self.rate, self.key)

    def backward(self, be, dy):
        return dy if self.rate == 0 else be.dropout_backward(dy, self.rate, self.key)
