"""The contract's 2-D map ops (:mod:`genrecnn.engine.ops.maps`) whose launches are the same
for both CUDA backends, planned once through the primitives of :mod:`.device`: max pooling
(``maps.cu``), batch normalisation (``norm.cu``: every channel reduced over a few blocks,
Welford and Chan merges, deterministic) and keyed dropout. conv2d is each backend's own
(their fp32 GEMMs differ). Pure Python: importing it needs no CUDA.
"""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.device import BLOCK, ChannelStatistics
from genrecnn.engine.ops import pool2d_out


class PoolNormDropoutOps(ChannelStatistics):
    """maxpool2d, batchnorm and dropout for a CUDA backend (listed before ``Backend``)."""

    # -- max pooling ---------------------------------------------------------------------

    def maxpool2d(self, x, size, stride):
        n, c, h, w = (int(s) for s in x.shape)
        (kh, kw), (sh, sw) = ((int(a) for a in p) for p in (size, stride))
        ho, wo = pool2d_out(h, kh, sh), pool2d_out(w, kw, sw)
        y = self._dev_empty((n, c, ho, wo), x.dtype)
        argmax = self._dev_empty((n, c, ho, wo), "int32")
        grid, block = G.rows_grid(n * c, ho * wo)
        self._dev_launch("maps.cu", "maxpool2d_fwd", "PPP" + "i" * 8, x.dtype, grid, block,
                         (x, y, argmax, h, w, ho, wo, kh, kw, sh, sw), {})
        return y, argmax

    def maxpool2d_backward(self, dy, argmax, height, width):
        n, c, ho, wo = (int(s) for s in dy.shape)
        height, width = int(height), int(width)
        dx = self.zeros((n, c, height, width), dy.dtype)
        grid, block = G.rows_grid(n * c, ho * wo)
        self._dev_launch("maps.cu", "maxpool2d_bwd", "PPPii", dy.dtype, grid, block,
                         (dy, argmax, dx, height * width, ho * wo), {})
        return dx

    # -- batch normalisation ---------------------------------------------------------------

    def batchnorm_train(self, x, gamma, beta, eps):
        pmean, pm2, (n, c, s, parts, rows, lts) = self._statistics_parts(x)
        y = self._dev_empty(x.shape, x.dtype)
        mean, invstd = self._dev_empty((c,), x.dtype), self._dev_empty((c,), x.dtype)
        self._dev_launch("norm.cu", "bn_normalize", "PPPPPPPPiiqiiT", x.dtype, (c, parts, 1),
                         BLOCK, (x, gamma, beta, pmean, pm2, y, mean, invstd, n, c, s, rows,
                                 lts, eps), {})
        return y, mean, invstd

    def batchnorm_running_update(self, running_mean, running_var, mean, invstd, count,
                                 momentum, eps):
        c = int(running_mean.shape[0])
        self._flat_launch("norm.cu", "bn_running_update", "PPPPiTTT", running_mean.dtype, c,
                          (running_mean, running_var, mean, invstd, c, momentum, eps,
                           G.variance_correction(count)))

    def batchnorm_infer(self, x, gamma, beta, running_mean, running_var, eps):
        n, c, s, parts, rows, lts = self._channels(x)
        y = self._dev_empty(x.shape, x.dtype)
        self._dev_launch("norm.cu", "bn_infer", "PPPPPPiiqiiT", x.dtype, (c, parts, 1), BLOCK,
                         (x, gamma, beta, running_mean, running_var, y, n, c, s, rows, lts,
                          eps), {})
        return y

    def batchnorm_backward(self, x, gamma, mean, invstd, dy):
        n, c, s, parts, rows, lts = self._channels(x)
        pa, pb = self._dev_empty((c * parts,), x.dtype), self._dev_empty((c * parts,), x.dtype)
        self._dev_launch("norm.cu", "channel_sums", "PPPPPPiiqiii", x.dtype, (c, parts, 1),
                         BLOCK, (dy, x, mean, invstd, pa, pb, n, c, s, rows, lts, 1), {})
        dx = self._dev_empty(x.shape, x.dtype)
        dgamma, dbeta = self._dev_empty((c,), x.dtype), self._dev_empty((c,), x.dtype)
        self._dev_launch("norm.cu", "bn_backward_dx", "PPPPPPPPPPiiqii", x.dtype, (c, parts, 1),
                         BLOCK, (x, dy, gamma, mean, invstd, pa, pb, dx, dgamma, dbeta, n, c, s,
                                 rows, lts), {})
        return dx, dgamma, dbeta

    # -- dropout ---------------------------------------------------------------------------

    def dropout(self, x, rate, key):
        return self._dropout(x, rate, key)

    def dropout_backward(self, dy, rate, key):
        return self._dropout(dy, rate, key)

    def _dropout(self, a, rate, key):
        """The keyed mask applied to ``a`` (forward and backward are the same map)."""
        keep_from, scale = G.dropout_threshold(rate)
        out = self._dev_empty(a.shape, a.dtype)
        n = int(out.size)
        self._flat_launch("maps.cu", "dropout_keyed", "PPqPIT", a.dtype, n,
                          (a, out, n, key, keep_from, scale))
        return out
