"""The dissertation's layers: convolution and pooling along time, global pooling,
fully connected layers, activations and the softmax output."""
from __future__ import annotations

import numpy as np

from genrecnn.errors import ShapeError
from genrecnn.engine.layers.base import Layer, init_weights
from genrecnn.engine.ops import ACTIVATIONS, conv1d_out_width, maxpool1d_out_width


class Conv1D(Layer):
    """Convolution along time; each of ``filters`` filters spans all input channels."""

    kind = type = "conv"
    op = "conv1d"
    has_params = True
    input_ranks = (2,)

    def __init__(self, filters: int, width: int, init: str = "he", scale: float | None = None,
                 name=None):
        super().__init__(name)
        self.filters, self.width, self.init, self.scale = int(filters), int(width), init, scale

    def config(self):
        return {"type": "conv", "filters": self.filters, "width": self.width, "init": self.init,
                **({"scale": self.scale} if self.scale is not None else {})}

    def _infer(self, shape):
        c, w = shape
        if w < self.width:
            raise ShapeError(
                f"layer {self.name!r} (conv, width {self.width}) gets input {shape}: only {w} "
                f"time steps, needs at least {self.width}; use longer clips or fewer pooling layers")
        return (self.filters, conv1d_out_width(w, self.width))

    def _init_params(self, rng, dtype):
        c = self.input_shape[0]
        return {"w": init_weights(rng, (self.filters, c, self.width), c * self.width, self.init,
                                  dtype, self.scale),
                "b": np.zeros(self.filters, dtype=dtype)}

    def forward(self, be, x, train):
        if train:
            self._cache = (x,)
        return be.conv1d(x, self.params["w"], self.params["b"], **self.products())

    def backward(self, be, dy):
        (x,) = self._cache
        if not self.needs_input_grad:
            self.grads["w"], self.grads["b"] = be.conv1d_backward_params(
                x, self.params["w"], dy, **self.products())
            return None
        dx, self.grads["w"], self.grads["b"] = be.conv1d_backward(x, self.params["w"], dy,
                                                                  **self.products())
        return dx


class MaxPool1D(Layer):
    """Max pooling along time; ``stride`` defaults to ``size`` (no overlap)."""

    kind = type = "pool"
    op = "maxpool1d"
    input_ranks = (2,)

    def __init__(self, size: int, stride: int | None = None, name=None):
        super().__init__(name)
        self.size = int(size)
        self.stride = int(stride) if stride else self.size

    def config(self):
        return {"type": "pool", "size": self.size, "stride": self.stride}

    def _infer(self, shape):
        c, w = shape
        if w < self.size:
            raise ShapeError(
                f"layer {self.name!r} (pool, size {self.size}) gets input {shape}: only {w} "
                f"time steps, needs at least {self.size}; use longer clips or a smaller pool")
        return (c, maxpool1d_out_width(w, self.size, self.stride))

    def forward(self, be, x, train):
        y, argmax = be.maxpool1d(x, self.size, self.stride)
        if train:
            self._cache = (argmax,)
        return y

    def backward(self, be, dy):
        (argmax,) = self._cache
        return be.maxpool1d_backward(dy, argmax, self.input_shape[1])


class GlobalPool(Layer):
    """Mean, max and L2 norm over time: a fixed-size summary of any length. 2-D maps are
    pooled over every position (``over="all"``) or over time only, band by band
    (``over="time"``: which bands hold the energy survives, as timbre needs); either
    way they are seen as sequences through ``reshape``."""

    kind = type = "gpool"
    op = "global_pool"
    input_ranks = (2, 3)
    OVER = ("all", "time")

    def __init__(self, over: str = "all", name=None):
        super().__init__(name)
        if over not in self.OVER:
            raise ShapeError(f"global pooling over {over!r}; use one of {', '.join(self.OVER)}")
        self.over = over

    def config(self):
        return {"type": self.type, **({"over": self.over} if self.over != "all" else {})}

    def _infer(self, shape):
        if len(shape) == 3 and self.over == "time":
            return (3 * shape[0] * shape[1],)
        return (3 * shape[0],)

    def forward(self, be, x, train):
        if len(x.shape) == 4:
            n, c, h, w = x.shape
            x = be.reshape(x, (n, c * h, w) if self.over == "time" else (n, c, h * w))
        y, argmax = be.global_pool(x)
        if train:
            self._cache = (x, y, argmax)
        return y

    def backward(self, be, dy):
        x, y, argmax = self._cache
        dx = be.global_pool_backward(x, y, argmax, dy)
        if len(self.input_shape) == 3:
            dx = be.reshape(dx, (dx.shape[0], *self.input_shape))
        return dx


class Dense(Layer):
    """Fully connected layer x @ w + b."""

    kind = type = "fc"
    op = "dense"
    has_params = True
    input_ranks = (1,)
    rank_hint = " (put a global pooling layer before it)"

    def __init__(self, units: int, init: str = "he", scale: float | None = None, name=None):
        super().__init__(name)
        self.units, self.init, self.scale = int(units), init, scale

    def config(self):
        return {"type": "fc", "units": self.units, "init": self.init,
                **({"scale": self.scale} if self.scale is not None else {})}

    def _infer(self, shape):
        return (self.units,)

    def _init_params(self, rng, dtype):
        i = self.input_shape[0]
        return {"w": init_weights(rng, (i, self.units), i, self.init, dtype, self.scale),
                "b": np.zeros(self.units, dtype=dtype)}

    def forward(self, be, x, train):
        if train:
            self._cache = (x,)
        return be.dense(x, self.params["w"], self.params["b"], **self.products())

    def backward(self, be, dy):
        (x,) = self._cache
        dx, self.grads["w"], self.grads["b"] = be.dense_backward(x, self.params["w"], dy,
                                                                 **self.products())
        return dx


class Activation(Layer):
    """Elementwise nonlinearity: relu, leaky_relu (with ``slope``), sigmoid, tanh."""

    kind = type = "act"
    op = "activation"

    def __init__(self, fn: str = "relu", slope: float = 0.01, name=None):
        super().__init__(name)
        if fn not in ACTIVATIONS:
            raise ShapeError(f"unknown activation {fn!r}; use one of {', '.join(ACTIVATIONS)}")
        self.fn, self.slope = fn, float(slope)

    def config(self):
        return {"type": "act", "fn": self.fn, "slope": self.slope}

    def forward(self, be, x, train):
        y = be.activation(self.fn, x, self.slope)
        if train:
            self._cache = (x, y)
        return y

    def backward(self, be, dy):
        x, y = self._cache
        return be.activation_backward(self.fn, x, y, dy, self.slope)


class Softmax(Layer):
    """Output layer: class probabilities; with labels, the mean cross-entropy loss."""

    kind = type = "softmax"
    op = "softmax"
    input_ranks = (1,)
    rank_hint = " of class scores"

    def forward(self, be, x, train):
        return be.softmax(x)

    def forward_loss(self, be, logits, labels) -> tuple[float, object]:
        loss, probs = be.softmax_cross_entropy(logits, labels)
        self._cache = (probs, labels)
        return loss, probs

    def forward_loss_acc(self, be, logits, labels_a, labels_b, lam, stats):
        """The loss of label pairs (mixup), accumulated into ``stats`` on the backend."""
        probs = be.softmax_cross_entropy_acc(logits, labels_a, labels_b, lam, stats)
        self._cache = (probs, labels_a, labels_b, lam)
        return probs

    def backward(self, be, dy=None):
        if len(self._cache) == 4:
            return be.softmax_cross_entropy_acc_backward(*self._cache)
        probs, labels = self._cache
        return be.softmax_cross_entropy_backward(probs, labels)
