"""PyCUDA: the fused block op, batch norm + ReLU + 2-D max pooling (contract in
:mod:`genrecnn.engine.ops.fused`), on the kernels of ``fused.cu`` that CuPy runs too.

Training forward: norm.cu's per-channel statistics (bn_stats_part, bn_stats_total),
then one pass that pools z by the sign of each channel's scale and normalises and
rectifies only the pooled values; no normalised map is written. Inference is that one
pass on the running statistics. Backward: a per-channel sum over the pooled outputs,
then one dense pass over z that gathers each position's gradient from its windows (no
atomics). All launches go through the backend's ``_run``; nothing here waits.
"""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G

from .host import HostBase

_BLOCK = (G.THREADS, 1, 1)
_WINDOW = "i" * 8          # (H, W, Ho, Wo, kh, kw, sh, sw): Pool2dShape.window_args


class PycudaFusedOps(HostBase):
    """norm_relu_maxpool2d for :class:`.PycudaBackend` (listed before ``Backend``)."""

    def norm_relu_maxpool2d_train(self, z, gamma, beta, eps, size, stride):
        dt = str(z.dtype)
        g = G.pool2d_shape(z.shape, size, stride)
        pmean, pm2, (n, c, s, parts, rows, lts) = self._statistics_parts(z)
        mean, invstd = self._empty((c,), dt), self._empty((c,), dt)
        grid, block = G.warp_rows_grid(c)
        self._run("norm.cu", "bn_stats_total", "PPPPiiqiiT", dt, grid, block, self._ptr(pmean),
                  self._ptr(pm2), self._ptr(mean), self._ptr(invstd), n, c, s, parts, rows,
                  float(eps))
        p = self._empty((g.n, g.c, g.ho, g.wo), dt)
        argmax = self._empty((g.n, g.c, g.ho, g.wo), "int32")
        grid, block = G.rows_grid(g.n * g.c, g.ho * g.wo)
        self._run("fused.cu", "fused_fwd_train", "PPPPPPPi" + _WINDOW, dt, grid, block,
                  self._ptr(z), self._ptr(gamma), self._ptr(beta), self._ptr(mean),
                  self._ptr(invstd), self._ptr(p), self._ptr(argmax), g.c, *g.window_args)
        return p, argmax, mean, invstd

    def norm_relu_maxpool2d_infer(self, z, gamma, beta, running_mean, running_var, eps, size,
                                  stride):
        dt = str(z.dtype)
        g = G.pool2d_shape(z.shape, size, stride)
        p = self._empty((g.n, g.c, g.ho, g.wo), dt)
        grid, block = G.rows_grid(g.n * g.c, g.ho * g.wo)
        self._run("fused.cu", "fused_fwd_infer", "PPPPPPi" + _WINDOW + "T", dt, grid, block,
                  self._ptr(z), self._ptr(gamma), self._ptr(beta), self._ptr(running_mean),
                  self._ptr(running_var), self._ptr(p), g.c, *g.window_args, float(eps))
        return p

    def norm_relu_maxpool2d_backward(self, z, gamma, mean, invstd, argmax, p, dp, size,
                                     stride):
        dt = str(z.dtype)
        g = G.pool2d_shape(z.shape, size, stride)
        q = g.ho * g.wo
        parts, rows, lts = G.channel_split(g.n, g.c, q, self.sm_count)
        pa, pb = self._empty((g.c * parts,), dt), self._empty((g.c * parts,), dt)
        self._run("fused.cu", "fused_bwd_sums", "PPPPPPPPiiqiii", dt, (g.c, parts, 1), _BLOCK,
                  self._ptr(z), self._ptr(mean), self._ptr(invstd), self._ptr(argmax),
                  self._ptr(p), self._ptr(dp), self._ptr(pa), self._ptr(pb), g.n, g.c, q,
                  g.h * g.w, rows, lts)
        dz = self._empty(z.shape, dt)
        dgamma, dbeta = self._empty((g.c,), dt), self._empty((g.c,), dt)
        grid, block = G.rows_grid(g.n * g.c, g.h * g.w)
        self._run("fused.cu", "fused_bwd_dz", "P" * 12 + "ii" + _WINDOW + "i", dt, grid, block,
                  self._ptr(z), self._ptr(gamma), self._ptr(mean), self._ptr(invstd),
                  self._ptr(argmax), self._ptr(p), self._ptr(dp), self._ptr(pa), self._ptr(pb),
                  self._ptr(dz), self._ptr(dgamma), self._ptr(dbeta), g.n, g.c,
                  *g.window_args, parts)
        return dz, dgamma, dbeta
