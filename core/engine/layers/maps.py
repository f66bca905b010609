"""Layers over 2-D maps (channels, mel, time): strided, zero-padded convolution and
max pooling. They share the placement kinds of their 1-D kin (``conv``, ``pool``);
the config types ``conv2d`` and ``pool2d`` tell them apart."""
from __future__ import annotations

import numpy as np

from genrecnn.errors import ShapeError
from genrecnn.engine.layers.base import Layer, init_weights, pair
from genrecnn.engine.ops import conv2d_out, pool2d_out


class Conv2D(Layer):
    """Convolution over (mel, time): ``filters`` filters of ``kernel`` (rows, columns)
    spanning all input channels, every ``stride``, with ``padding`` zeros each side."""

    kind, type = "conv", "conv2d"
    op = "conv2d"
    has_params = True
    input_ranks = (3,)

    def __init__(self, filters: int, kernel=(3, 3), stride=(1, 1), padding=(0, 0),
                 init: str = "he", scale: float | None = None, name=None):
        super().__init__(name)
        self.filters, self.init, self.scale = int(filters), init, scale
        self.kernel = pair(kernel, "kernel", self.type)
        self.stride = pair(stride, "stride", self.type)
        self.padding = pair(padding, "padding", self.type)
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ShapeError(f"conv2d needs kernel and stride of at least 1 and padding of at "
                             f"least 0, got kernel {list(self.kernel)}, stride "
                             f"{list(self.stride)}, padding {list(self.padding)}")

    def config(self):
        return {"type": self.type, "filters": self.filters, "kernel": list(self.kernel),
                "stride": list(self.stride), "padding": list(self.padding), "init": self.init,
                **({"scale": self.scale} if self.scale is not None else {})}

    def _infer(self, shape):
        _, h, w = shape
        out = tuple(conv2d_out(size, k, s, p) for size, k, s, p in
                    zip((h, w), self.kernel, self.stride, self.padding))
        if min(out) < 1:
            raise ShapeError(
                f"layer {self.name!r} (conv2d, kernel {list(self.kernel)}, padding "
                f"{list(self.padding)}) gets maps {shape}: smaller than its kernel; use longer "
                f"clips, more padding or fewer pooling layers")
        return (self.filters, *out)

    def _init_params(self, rng, dtype):
        c = self.input_shape[0]
        kh, kw = self.kernel
        return {"w": init_weights(rng, (self.filters, c, kh, kw), c * kh * kw, self.init, dtype,
                                  self.scale),
                "b": np.zeros(self.filters, dtype=dtype)}

    def forward(self, be, x, train):
        if train:
            self._cache = (x,)
        return be.conv2d(x, self.params["w"], self.params["b"], self.stride, self.padding,
                         **self.products())

    def backward(self, be, dy):
        (x,) = self._cache
        w = self.params["w"]
        if not self.needs_input_grad:
            self.grads["w"], self.grads["b"] = be.conv2d_backward_params(
                x, w, dy, self.stride, self.padding, **self.products())
            return None
        dx, self.grads["w"], self.grads["b"] = be.conv2d_backward(x, w, dy, self.stride,
                                                                  self.padding, **self.products())
        return dx


class MaxPool2D(Layer):
    """Max pooling over (mel, time) windows of ``size``; ``stride`` defaults to ``size``."""

    kind, type = "pool", "pool2d"
    op = "maxpool2d"
    input_ranks = (3,)

    def __init__(self, size=(2, 2), stride=None, name=None):
        super().__init__(name)
        self.size = pair(size, "size", self.type)
        self.stride = pair(stride, "stride", self.type) if stride else self.size
        if min(self.size) < 1 or min(self.stride) < 1:
            raise ShapeError(f"pool2d needs size and stride of at least 1, got size "
                             f"{list(self.size)}, stride {list(self.stride)}")

    def config(self):
        return {"type": self.type, "size": list(self.size), "stride": list(self.stride)}

    def _infer(self, shape):
        c, h, w = shape
        if h < self.size[0] or w < self.size[1]:
            raise ShapeError(
                f"layer {self.name!r} (pool2d, size {list(self.size)}) gets maps {shape}: "
                f"smaller than one window; use longer clips or a smaller pool")
        return (c, pool2d_out(h, self.size[0], self.stride[0]),
                pool2d_out(w, self.size[1], self.stride[1]))

    def forward(self, be, x, train):
        y, argmax = be.maxpool2d(x, self.size, self.stride)
        if train:
            self._cache = (argmax,)
        return y

    def backward(self, be, dy):
        (argmax,) = self._cache
        return be.maxpool2d_backward(dy, argmax, *self.input_shape[1:])
