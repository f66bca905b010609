"""CuPy: the fused block op, batch norm + ReLU + 2-D max pooling (contract in
:mod:`genrecnn.engine.ops.fused`), on the kernels of ``fused.cu`` that PyCUDA runs too.

Training forward: norm.cu's per-channel statistics (bn_stats_part, bn_stats_total),
then one pass that pools z by the sign of each channel's scale and normalises and
rectifies only the pooled values; no normalised map is written. Inference is that one
pass on the running statistics. Backward: a per-channel sum over the pooled outputs,
then one dense pass over z that gathers each position's gradient from its windows (no
atomics). Nothing here reads device data back.
"""
from __future__ import annotations

import numpy as np

from genrecnn.backends.cuda_kernels import grids as G

from . import kernels as K
from .maps import _i32, statistics_parts

try:  # CuPy stays optional: the backend must import (and be listed) without it
    import cupy as cp
except Exception:  # ImportError, or a broken CUDA install raising at import
    cp = None


class CupyFusedOps:
    """norm_relu_maxpool2d for :class:`.CupyBackend` (listed before ``Backend``)."""

    def norm_relu_maxpool2d_train(self, z, gamma, beta, eps, size, stride):
        g = G.pool2d_shape(z.shape, size, stride)
        pmean, pm2, (n, c, s, parts, rows, lts) = statistics_parts(z)
        mean = cp.empty((c,), dtype=z.dtype)
        invstd = cp.empty((c,), dtype=z.dtype)
        grid, block = G.warp_rows_grid(c)
        K.launch("norm.cu", "bn_stats_total", z.dtype, grid, block,
                 (pmean, pm2, mean, invstd) + _i32(n, c) + (np.int64(s),)
                 + _i32(parts, rows) + (z.dtype.type(eps),))
        p = cp.empty((g.n, g.c, g.ho, g.wo), dtype=z.dtype)
        argmax = cp.empty((g.n, g.c, g.ho, g.wo), dtype=cp.int32)
        grid, block = G.rows_grid(g.n * g.c, g.ho * g.wo)
        K.launch("fused.cu", "fused_fwd_train", z.dtype, grid, block,
                 (z, gamma, beta, mean, invstd, p, argmax) + _i32(g.c, *g.window_args))
        return p, argmax, mean, invstd

    def norm_relu_maxpool2d_infer(self, z, gamma, beta, running_mean, running_var, eps, size,
                                  stride):
        g = G.pool2d_shape(z.shape, size, stride)
        p = cp.empty((g.n, g.c, g.ho, g.wo), dtype=z.dtype)
        grid, block = G.rows_grid(g.n * g.c, g.ho * g.wo)
        K.launch("fused.cu", "fused_fwd_infer", z.dtype, grid, block,
                 (z, gamma, beta, running_mean, running_var, p) + _i32(g.c, *g.window_args)
                 + (z.dtype.type(eps),))
        return p

    def norm_relu_maxpool2d_backward(self, z, gamma, mean, invstd, argmax, p, dp, size,
                                     stride):
        g = G.pool2d_shape(z.shape, size, stride)
        q = g.ho * g.wo
        parts, rows, lts = G.channel_split(g.n, g.c, q, K.current_sm_count())
        pa = cp.empty((g.c * parts,), dtype=z.dtype)
        pb = cp.empty((g.c * parts,), dtype=z.dtype)
        K.launch("fused.cu", "fused_bwd_sums", z.dtype, (g.c, parts, 1), (G.THREADS, 1, 1),
                 (z, mean, invstd, argmax, p, dp, pa, pb) + _i32(g.n, g.c) + (np.int64(q),)
                 + _i32(g.h * g.w, rows, lts))
        dz = cp.empty(z.shape, dtype=z.dtype)
        dgamma = cp.empty((g.c,), dtype=z.dtype)
        dbeta = cp.empty((g.c,), dtype=z.dtype)
        grid, block = G.rows_grid(g.n * g.c, g.h * g.w)
        K.launch("fused.cu", "fused_bwd_dz", z.dtype, grid, block,
                 (z, gamma, mean, invstd, argmax, p, dp, pa, pb, dz, dgamma, dbeta)
                 + _i32(g.n, g.c, *g.window_args, parts))
        return dz, dgamma, dbeta
