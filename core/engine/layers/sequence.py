"""The dissertation's layers, written once against the op contract.

A layer knows its shapes and parameters; every computation is a call to an op
of the backend it is placed on (``be``). Shapes are per example (no batch
axis): sequences are ``(C, W)``, flat vectors ``(I,)``.
"""
from __future__ import annotations

import numpy as np

from genrecnn.errors import ShapeError
from genrecnn.engine.ops import ACTIVATIONS, conv1d_out_width, maxpool1d_out_width

KINDS = ("conv", "pool", "gpool", "fc", "act", "softmax")
INITS = ("variance", "he", "uniform")


def init_weights(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int,
                 scheme: str, dtype: str, scale: float | None = None) -> np.ndarray:
    """Initial weights.

    ``variance``: uniform in +-1/sqrt(fan_in), so each unit's input variance
    does not grow with its fan-in. ``he``: normal with variance 2 / fan_in,
    suited to ReLU layers. ``uniform``: uniform in +-``scale``, as the
    dissertation's listing gives a scale per layer.
    """
    if scheme == "variance":
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, size=shape)
    elif scheme == "he":
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    elif scheme == "uniform":
        if scale is None or not scale > 0:
            raise ShapeError(f"init 'uniform' needs a positive scale, got {scale!r}; "
                             f"add scale = 0.05 (say) to the layer")
        w = rng.uniform(-scale, scale, size=shape)
    else:
        raise ShapeError(f"unknown weight initialisation {scheme!r}; use one of {', '.join(INITS)}")
    return w.astype(dtype)


class Layer:
    """Base layer: shape inference, parameters and forward/backward through ops."""

    kind = ""
    op = ""              # the op group of the contract this layer calls
    has_params = False   # whether it has trainable parameters (and so an update op)

    def __init__(self, name: str | None = None):
        self.name = name or ""
        self.input_shape: tuple[int, ...] = ()
        self.output_shape: tuple[int, ...] = ()
        self.params: dict[str, object] = {}   # backend arrays once placed
        self.grads: dict[str, object] = {}
        self._cache: tuple = ()
        # False for the first layer: its backward need not compute an input gradient.
        self.needs_input_grad = True

    def config(self) -> dict:
        """The constructor arguments, for saving the architecture."""
        return {"type": self.kind}

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype: str
              ) -> tuple[int, ...]:
        """Check ``input_shape``, create parameters on the host, return the output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self._infer(self.input_shape)
        self.params = self._init_params(rng, dtype)
        return self.output_shape

    def _infer(self, shape):
        return shape

    def _init_params(self, rng, dtype) -> dict:
        return {}

    def _need(self, shape, ndim: int, what: str) -> None:
        if len(shape) != ndim:
            raise ShapeError(
                f"layer {self.name!r} ({self.kind}) expects {what} but gets input of shape "
                f"{shape}; check the layer before it")

    def forward(self, be, x, train: bool):
        raise NotImplementedError

    def backward(self, be, dy):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.name}: {self.kind} {self.input_shape} -> {self.output_shape}"


class Conv1D(Layer):
    """Convolution along time; each of ``filters`` filters spans all input channels."""

    kind = "conv"
    op = "conv1d"
    has_params = True

    def __init__(self, filters: int, width: int, init: str = "he", scale: float | None = None,
                 name=None):
        super().__init__(name)
        self.filters, self.width, self.init, self.scale = int(filters), int(width), init, scale

    def config(self):
        return {"type": "conv", "filters": self.filters, "width": self.width, "init": self.init,
                **({"scale": self.scale} if self.scale is not None else {})}

    def _infer(self, shape):
        self._need(shape, 2, "a (channels, time) sequence")
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
        return be.conv1d(x, self.params["w"], self.params["b"])

    def backward(self, be, dy):
        (x,) = self._cache
        if not self.needs_input_grad:
            self.grads["w"], self.grads["b"] = be.conv1d_backward_params(x, self.params["w"], dy)
            return None
        dx, self.grads["w"], self.grads["b"] = be.conv1d_backward(x, self.params["w"], dy)
        return dx


class MaxPool1D(Layer):
    """Max pooling along time; ``stride`` defaults to ``size`` (no overlap)."""

    kind = "pool"
    op = "maxpool1d"

    def __init__(self, size: int, stride: int | None = None, name=None):
        super().__init__(name)
        self.size = int(size)
        self.stride = int(stride) if stride else self.size

    def config(self):
        return {"type": "pool", "size": self.size, "stride": self.stride}

    def _infer(self, shape):
        self._need(shape, 2, "a (channels, time) sequence")
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
    """Mean, max and L2 norm over time: a fixed-size summary of any length."""

    kind = "gpool"
    op = "global_pool"

    def _infer(self, shape):
        self._need(shape, 2, "a (channels, time) sequence")
        return (3 * shape[0],)

    def forward(self, be, x, train):
        y, argmax = be.global_pool(x)
        if train:
            self._cache = (x, y, argmax)
        return y

    def backward(self, be, dy):
        x, y, argmax = self._cache
        return be.global_pool_backward(x, y, argmax, dy)


class Dense(Layer):
    """Fully connected layer x @ w + b."""

    kind = "fc"
    op = "dense"
    has_params = True

    def __init__(self, units: int, init: str = "he", scale: float | None = None, name=None):
        super().__init__(name)
        self.units, self.init, self.scale = int(units), init, scale

    def config(self):
        return {"type": "fc", "units": self.units, "init": self.init,
                **({"scale": self.scale} if self.scale is not None else {})}

    def _infer(self, shape):
        self._need(shape, 1, "a flat vector (put a global pooling layer before it)")
        return (self.units,)

    def _init_params(self, rng, dtype):
        i = self.input_shape[0]
        return {"w": init_weights(rng, (i, self.units), i, self.init, dtype, self.scale),
                "b": np.zeros(self.units, dtype=dtype)}

    def forward(self, be, x, train):
        if train:
            self._cache = (x,)
        return be.dense(x, self.params["w"], self.params["b"])

    def backward(self, be, dy):
        (x,) = self._cache
        dx, self.grads["w"], self.grads["b"] = be.dense_backward(x, self.params["w"], dy)
        return dx


class Activation(Layer):
    """Elementwise nonlinearity: relu, leaky_relu (with ``slope``), sigmoid, tanh."""

    kind = "act"
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

    kind = "softmax"
    op = "softmax"

    def _infer(self, shape):
        self._need(shape, 1, "a flat vector of class scores")
        return shape

    def forward(self, be, x, train):
        return be.softmax(x)

    def forward_loss(self, be, logits, labels) -> tuple[float, object]:
        loss, probs = be.softmax_cross_entropy(logits, labels)
        self._cache = (probs, labels)
        return loss, probs

    def backward(self, be, dy=None):
        probs, labels = self._cache
        return be.softmax_cross_entropy_backward(probs, labels)


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.kind: cls for cls in (Conv1D, MaxPool1D, GlobalPool, Dense, Activation, Softmax)}


def layer_from_config(cfg: dict) -> Layer:
    """Build a layer from ``{"type": kind, ...arguments}`` (as in architecture files)."""
    cfg = dict(cfg)
    kind = cfg.pop("type", None)
    if kind not in LAYER_TYPES:
        raise ShapeError(f"unknown layer type {kind!r}; use one of {', '.join(KINDS)}")
    try:
        return LAYER_TYPES[kind](**cfg)
    except TypeError as exc:
        raise ShapeError(f"bad arguments for a {kind!r} layer {cfg}: {exc}") from None
