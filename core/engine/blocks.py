"""The network's units of work: single layers, and batchnorm -> relu -> pool2d run as
one fused op where the three sit together on a backend that declares ``fused``.

A block is a plain run of three layers of the chain (placement, parameters, state,
checkpoints and the per-layer benchmark still see the layers); only the network's
forward and backward call the block instead of its layers, so each pass over the
activations is made once instead of three times. The batch-norm layer keeps its
parameters, running statistics and gradients exactly as when it runs alone.
"""
from __future__ import annotations

from genrecnn.engine.layers import Activation, BatchNorm, MaxPool2D

FUSED_OP = "fused"


class NormReluPool:
    """batchnorm -> act(relu) -> pool2d as one call of the ``fused`` ops."""

    def __init__(self, norm: BatchNorm, act: Activation, pool: MaxPool2D):
        self.norm, self.act, self.pool = norm, act, pool
        self._cache: tuple = ()

    def forward(self, be, z, train: bool):
        norm, pool = self.norm, self.pool
        p, s = norm.params, norm.state
        if not train:
            return be.norm_relu_maxpool2d_infer(z, p["gamma"], p["beta"], s["running_mean"],
                                                s["running_var"], norm.eps, pool.size,
                                                pool.stride)
        out, argmax, mean, invstd = be.norm_relu_maxpool2d_train(
            z, p["gamma"], p["beta"], norm.eps, pool.size, pool.stride)
        norm.fold_statistics(be, z.shape, mean, invstd)
        self._cache = (z, mean, invstd, argmax, out)
        return out

    def backward(self, be, dp):
        z, mean, invstd, argmax, out = self._cache
        dz, self.norm.grads["gamma"], self.norm.grads["beta"] = \
            be.norm_relu_maxpool2d_backward(z, self.norm.params["gamma"], mean, invstd, argmax,
                                            out, dp, self.pool.size, self.pool.stride)
        return dz


def fusable(layers, backends) -> bool:
    """Whether three consecutive layers are batchnorm over maps, ReLU and 2-D max pooling,
    all on one backend that declares the fused ops."""
    norm, act, pool = layers
    return (isinstance(norm, BatchNorm) and len(norm.input_shape) == 3
            and isinstance(act, Activation) and act.fn == "relu"
            and isinstance(pool, MaxPool2D)
            and backends[0] is backends[1] is backends[2] and backends[0].supports(FUSED_OP))


def units(layers, backends, fuse: bool = True) -> list[tuple[object, object]]:
    """(unit, backend) in chain order: each layer, or a :class:`NormReluPool` for three
    that :func:`fusable` accepts (``fuse=False``: every layer alone)."""
    out, i = [], 0
    while i < len(layers):
        trio = layers[i:i + 3]
        if fuse and len(trio) == 3 and fusable(trio, backends[i:i + 3]):
            out.append((NormReluPool(*trio), backends[i]))
            i += 3
        else:
            out.append((layers[i], backends[i]))
            i += 1
    return out

