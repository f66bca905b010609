"""NumPy: the fused block op, batch norm + ReLU + 2-D max pooling (contract in
:mod:`genrecnn.engine.ops.fused`).

The normalisation is monotone per channel, so the forward pools z itself (times the
sign of each channel's scale: the maximum, the minimum, or for a zero scale a constant
whose first position wins as it does for the constant y) with maxpool2d's own pass,
then normalises and rectifies only the pooled values: no normalised map, no ReLU map.
The backward sums over the pooled positions only and writes dz in one dense pass
plus a scatter of the pooled gradients (so it needs no window: size and stride unused).
"""
from __future__ import annotations

import numpy as np

from .maps import _channel_sum, _col, _per_channel, scatter_add, statistics
from .parallel import over_batch


def _selected(z3, argmax):
    """z at each window's argmax: [N, C, Ho*Wo]."""
    return np.take_along_axis(z3, argmax.reshape(z3.shape[0], z3.shape[1], -1), axis=2)


class NumpyFusedOps:
    """norm_relu_maxpool2d for :class:`.NumpyBackend` (listed before ``Backend``)."""

    def _pool_monotone(self, z, scale, size, stride):
        """(argmax, z at argmax [N, C, Ho*Wo]) of maxpool2d over y = z * scale + shift:
        z is pooled as it is where every scale is positive, else z * sign(scale)."""
        sign = np.sign(scale)
        if (sign > 0).all():
            q, arg = self.maxpool2d(z, size, stride)
            return arg, q.reshape(q.shape[0], q.shape[1], -1)
        _, arg = self.maxpool2d(z * sign[None, :, None, None], size, stride)
        return arg, _selected(_per_channel(z), arg)

    def norm_relu_maxpool2d_train(self, z, gamma, beta, eps, size, stride):
        mean, invstd = statistics(_per_channel(z), eps)
        dt = z.dtype
        scale = (invstd * gamma).astype(dt)                 # batchnorm_train's arithmetic
        arg, zsel = self._pool_monotone(z, scale, size, stride)
        p = zsel - _col(mean, dt)
        p *= scale[None, :, None]
        p += _col(beta, dt)
        np.maximum(p, 0, out=p)
        return p.reshape(arg.shape), arg, mean.astype(dt), invstd.astype(dt)

    def norm_relu_maxpool2d_infer(self, z, gamma, beta, running_mean, running_var, eps, size,
                                  stride):
        dt = z.dtype
        scale64 = gamma / np.sqrt(running_var.astype(np.float64) + eps)
        shift = _col(beta - running_mean * scale64, dt)     # batchnorm_infer's arithmetic
        scale = scale64.astype(dt)
        arg, zsel = self._pool_monotone(z, scale, size, stride)
        p = zsel * scale[None, :, None]
        p += shift
        np.maximum(p, 0, out=p)
        return p.reshape(arg.shape)

    def norm_relu_maxpool2d_backward(self, z, gamma, mean, invstd, argmax, p, dp, size,
                                     stride):
        n, c = z.shape[:2]
        dt, z3 = z.dtype, _per_channel(z)
        m = z3.shape[0] * z3.shape[2]
        g = np.where(p > 0, dp, dt.type(0)).reshape(n, c, -1)     # dy at the pooled positions
        centred = _selected(z3, argmax) - _col(mean, dt)
        dbeta = _channel_sum(g)
        dgamma = _channel_sum(g * centred) * invstd
        k = gamma.astype(np.float64) * invstd
        k_xc, k_0 = _col(-k * invstd * dgamma / m, dt), _col(-k * dbeta / m, dt)
        dz = np.empty_like(z3)

        def dense(s):
            np.subtract(z3[s], _col(mean, dt), out=dz[s])
            dz[s] *= k_xc
            dz[s] += k_0
        over_batch(dense, n, 2 * z3.size)
        g *= _col(k, dt)
        scatter_add(dz, argmax.reshape(n, c, -1), g)
        return dz.reshape(z.shape), dgamma.astype(dt), dbeta.astype(dt)
