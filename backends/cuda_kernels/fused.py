"""The fused block op, batch norm + ReLU + 2-D max pooling (contract in
:mod:`genrecnn.engine.ops.fused`), on ``fused.cu``'s kernels for both CUDA backends,
planned once through the primitives of :mod:`.device`.

Training forward: norm.cu's per-channel statistics (bn_stats_part, bn_stats_total),
then one pass that pools z by the sign of each channel's scale and normalises and
rectifies only the pooled values; no normalised map is written. Inference is that one
pass on the running statistics. Backward: a per-channel sum over the pooled outputs,
then one dense pass over z that gathers each position's gradient from its windows (no
atomics). Nothing here reads device data back. Pure Python: importing it needs no CUDA.
"""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.device import BLOCK, ChannelStatistics

WINDOW = "i" * 8          # (H, W, Ho, Wo, kh, kw, sh, sw): Pool2dShape.window_args


class FusedBlockOps(ChannelStatistics):
    """norm_relu_maxpool2d for a CUDA backend (listed before ``Backend``)."""

    def norm_relu_maxpool2d_train(self, z, gamma, beta, eps, size, stride):
        dt = z.dtype
        g = G.pool2d_shape(z.shape, size, stride)
        pmean, pm2, (n, c, s, parts, rows, lts) = self._statistics_parts(z)
        mean, invstd = self._dev_empty((c,), dt), self._dev_empty((c,), dt)
        grid, block = G.warp_rows_grid(c)
        self._dev_launch("norm.cu", "bn_stats_total", "PPPPiiqiiT", dt, grid, block,
                         (pmean, pm2, mean, invstd, n, c, s, parts, rows, eps), {})
        p = self._dev_empty((g.n, g.c, g.ho, g.wo), dt)
        argmax = self._dev_empty((g.n, g.c, g.ho, g.wo), "int32")
        grid, block = G.rows_grid(g.n * g.c, g.ho * g.wo)
        self._dev_launch("fused.cu", "fused_fwd_train", "PPPPPPPi" + WINDOW, dt, grid, block,
                         (z, gamma, beta, mean, invstd, p, argmax, g.c, *g.window_args), {})
        return p, argmax, mean, invstd

    def norm_relu_maxpool2d_infer(self, z, gamma, beta, running_mean, running_var, eps, size,
                                  stride):
        g = G.pool2d_shape(z.shape, size, stride)
        p = self._dev_empty((g.n, g.c, g.ho, g.wo), z.dtype)
        grid, block = G.rows_grid(g.n * g.c, g.ho * g.wo)
        self._dev_launch("fused.cu", "fused_fwd_infer", "PPPPPPi" + WINDOW + "T", z.dtype,
                         grid, block, (z, gamma, beta, running_mean, running_var, p, g.c,
                                       *g.window_args, eps), {})
        return p

    def norm_relu_maxpool2d_backward(self, z, gamma, mean, invstd, argmax, p, dp, size,
                                     stride):
        dt = z.dtype
        g = G.pool2d_shape(z.shape, size, stride)
        q = g.ho * g.wo
        parts, rows, lts = G.channel_split(g.n, g.c, q, self._dev_sm_count())
        pa, pb = self._dev_empty((g.c * parts,), dt), self._dev_empty((g.c * parts,), dt)
        self._dev_launch("fused.cu", "fused_bwd_sums", "PPPPPPPPiiqiii", dt, (g.c, parts, 1),
                         BLOCK, (z, mean, invstd, argmax, p, dp, pa, pb, g.n, g.c, q,
                                 g.h * g.w, rows, lts), {})
        dz = self._dev_empty(z.shape, dt)
        dgamma, dbeta = self._dev_empty((g.c,), dt), self._dev_empty((g.c,), dt)
        # every block first adds its channel's partial sums: few blocks, many positions each
        grid, block = G.copy_rows_grid(g.n * g.c, g.h * g.w)
        self._dev_launch("fused.cu", "fused_bwd_dz", "P" * 12 + "ii" + WINDOW + "i", dt, grid,
                         block, (z, gamma, mean, invstd, argmax, p, dp, pa, pb, dz, dgamma,
                                 dbeta, g.n, g.c, *g.window_args, parts), {})
        return dz, dgamma, dbeta
