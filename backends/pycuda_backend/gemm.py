"""The PyCUDA backend's GEMM-based ops: conv1d and dense, forward and backward.

All of them run the tiled kernels of ``gemm.cu``; this module picks the tiling
and, where an output has too few tiles to fill the GPU, splits the reduction
(split-K) and adds the slices with ``splits.cu``'s ``sum_splits``. A convolution
with few filters (at most ``direct_conv1d_max_filters``) runs the forward and the
weight gradient on ``conv1d_direct.cu`` instead, which reads x once. A mixin of
:class:`~.backend.PycudaBackend`, whose helpers (``_empty``, ``_ptr``,
``_launch``, ``_elementwise``, ``_zero_fill``, ``sm_count``) it uses.
"""
from __future__ import annotations

from genrecnn.engine.ops import conv1d_out_width

from . import grids as G
from .grids import THREADS as BLOCK, cdiv

# Tilings (block tile BM x BN, reduction slice BK, per-thread TM x TN); all use 256 threads.
SMALL_TILE = {"BM": 64, "BN": 64, "BK": 16, "TM": 4, "TN": 4}
LARGE_TILE = {"BM": 128, "BN": 128, "BK": 8, "TM": 8, "TN": 8}
NARROW_TILE = {"BM": 32, "BN": 128, "BK": 16, "TM": 2, "TN": 8}   # <= 32 rows (e.g. 32 filters)


class GemmOps:
    """conv1d, conv1d_backward(_params), dense, dense_backward on ``gemm.cu``."""

    direct_conv1d_max_filters = G.DIRECT_CONV1D_MAX_FILTERS

    def _tile(self, m: int, n: int, batches: int) -> dict:
        """The narrow tiling for outputs of at most 32 rows (a 64-row tile would compute
        zeros half the time) when its tiles still fill the GPU twice over; else the
        large one when that fills it twice over, else the small one (more, smaller
        tiles for small batches)."""
        if m <= 32 and cdiv(n, 128) * batches >= 2 * self.sm_count:
            return NARROW_TILE
        big = cdiv(m, 128) * cdiv(n, 128) * batches
        return LARGE_TILE if m >= 128 and n >= 128 and big >= 2 * self.sm_count else SMALL_TILE

    def _gemm(self, name, dtype, m, n, batches, tile, args, arg_types, **consts):
        grid = (cdiv(n, tile["BN"]), cdiv(m, tile["BM"]), batches)
        self._launch("gemm.cu", name, arg_types, dtype, grid, (BLOCK, 1, 1), *args,
                     **tile, **consts)

    # -- convolution -----------------------------------------------------------------------

    def conv1d(self, x, w, b):
        dt = str(x.dtype)
        (n, c, width), (f, _, k) = x.shape, w.shape
        wo = conv1d_out_width(width, k)
        y = self._empty((n, f, wo), dt)
        if y.size and f <= self.direct_conv1d_max_filters:
            self._launch("conv1d_direct.cu", "conv1d_direct_fwd", "PPPPiii", dt,
                         *G.conv1d_direct_fwd_grid(n, f, wo), self._ptr(x),
                         self._ptr(w), self._ptr(b), self._ptr(y), c, width, f, KW=k)
        elif y.size:
            self._gemm("conv1d_fwd", dt, f, wo, n, self._tile(f, wo, n),
                       (self._ptr(x), self._ptr(w), self._ptr(b), self._ptr(y), c, width, f),
                       "PPPPiii", KW=k)
        return y

    def conv1d_backward(self, x, w, dy):
        dw, db = self.conv1d_backward_params(x, w, dy)
        dt = str(x.dtype)
        (n, c, width), (f, _, k) = x.shape, w.shape
        dx = self._empty((n, c, width), dt)
        if n:
            self._gemm("conv1d_dx", dt, c, width, n, self._tile(c, width, n),
                       (self._ptr(dy), self._ptr(w), self._ptr(dx), c, width, f), "PPPiii", KW=k)
        return dx, dw, db

    def conv1d_backward_params(self, x, w, dy):
        dt = str(x.dtype)
        (n, c, width), (f, _, k) = x.shape, w.shape
        wo = conv1d_out_width(width, k)
        if n and f <= self.direct_conv1d_max_filters:
            return self._conv_dw_direct(x, dy, dt, n, c, width, f, k)
        dw = self._empty((f, c, k), dt)
        db = self._empty((f,), dt)
        if n == 0:
            self._zero_fill(dw)
            self._zero_fill(db)
            return dw, db
        self._conv_dw(x, dy, dw, dt, n, c, width, f, k, wo)
        self._launch("reduce.cu", "sum_nq", "PPiii", dt, (f, 1, 1), (BLOCK, 1, 1),
                     self._ptr(dy), self._ptr(db), n, f, wo)
        return dw, db

    def _sum_splits(self, dt, part, out, splits, size, bias=None, ncols=1):
        """out = the sum of part's ``splits`` slices of ``size`` values (+ bias[i % ncols])."""
        self._launch("splits.cu", "sum_splits", "PPiqPi", dt, *G.sum_splits_grid(size),
                     self._ptr(part), self._ptr(out), splits, size,
                     0 if bias is None else self._ptr(bias), ncols)

    def _conv_dw_direct(self, x, dy, dt, n, c, width, f, k):
        """(dw, db) from conv1d_direct_dw: one buffer [dw | db], split over the batch."""
        plan = G.conv1d_dw_plan(n, c, width, f, k, x.dtype.itemsize, self.sm_count)
        sums = self._empty((plan.size,), dt)
        part = sums if plan.splits == 1 else self._empty((plan.splits, plan.size), dt)
        self._launch("conv1d_direct.cu", "conv1d_direct_dw", "PPPiiiii", dt, plan.grid,
                     plan.block, self._ptr(x), self._ptr(dy), self._ptr(part), n, c, width,
                     f, plan.per, KW=k, DW_C=plan.channels)
        if plan.splits > 1:
            self._sum_splits(dt, part, sums, plan.splits, plan.size)
        return sums[:f * c * k].reshape((f, c, k)), sums[f * c * k:]

    def _conv_dw(self, x, dy, dw, dt, n, c, width, f, k, wo):
        """dw by split-K: the N*Wo reduction is cut into S slices so that small
        F x C*K outputs still fill the GPU; sum_splits adds the slices."""
        ck = c * k
        most = min(max(1, (n * wo) // 256), max(1, (1 << 26) // (f * ck)))   # slices: >= 256
        tile = self._tile(f, ck, most)                      # steps each, <= 64M partial sums
        tiles = cdiv(f, tile["BM"]) * cdiv(ck, tile["BN"])
        want = min(most, max(1, cdiv(4 * self.sm_count, tiles)))
        if want <= n:
            nper, ts, tchunk = cdiv(n, want), 1, wo
            splits = cdiv(n, nper)
        else:
            nper = 1
            ts = min(cdiv(want, n), max(1, cdiv(wo, 256)))
            tchunk = cdiv(cdiv(wo, ts), tile["BK"]) * tile["BK"]
            ts = cdiv(wo, tchunk)
            splits = n * ts
        part = dw if splits == 1 else self._empty((splits, f * ck), dt)
        self._gemm("conv1d_dw", dt, f, ck, splits, tile,
                   (self._ptr(x), self._ptr(dy), self._ptr(part), n, c, width, f, nper, tchunk, ts),
                   "PPPiiiiiii", KW=k)
        if splits > 1:
            self._sum_splits(dt, part, dw, splits, f * ck)

    # -- dense -----------------------------------------------------------------------------

    def _split_plan(self, m: int, n: int, r: int):
        """(tile, splits, chunk) for an m x n output summed over r: split-K when the
        output has too few tiles to fill the GPU and the reduction is long."""
        tile = self._tile(m, n, 1)
        tiles = cdiv(m, tile["BM"]) * cdiv(n, tile["BN"])
        splits = 1
        if tiles < 2 * self.sm_count and r >= 256:
            splits = max(1, min(cdiv(4 * self.sm_count, tiles), r // 128,
                                (1 << 26) // max(1, m * n)))
        chunk = cdiv(cdiv(max(r, 1), splits), tile["BK"]) * tile["BK"]
        return tile, max(1, cdiv(r, chunk)), chunk

    def _dense_gemm(self, name, dt, m, n, r, inputs, bias, out, dims):
        """Launch dense kernel ``name`` into ``out`` [m, n], split-K where it pays."""
        tile, splits, chunk = self._split_plan(m, n, r)
        dest = out if splits == 1 else self._empty((splits, m * n), dt)
        head = [self._ptr(a) for a in inputs]
        if name == "dense_fwd":
            head.append(self._ptr(bias) if splits == 1 else 0)
        self._gemm(name, dt, m, n, splits, tile, (*head, self._ptr(dest), *dims, chunk),
                   "P" * (len(head) + 1) + "iiii", KW=1)
        if splits > 1:
            self._sum_splits(dt, dest, out, splits, m * n, bias, n)

    def dense(self, x, w, b):
        dt = str(x.dtype)
        (n, i), o = x.shape, w.shape[1]
        y = self._empty((n, o), dt)
        if y.size:
            self._dense_gemm("dense_fwd", dt, n, o, i, (x, w), b, y, (n, i, o))
        return y

    def dense_backward(self, x, w, dy):
        dt = str(x.dtype)
        (n, i), o = x.shape, w.shape[1]
        dx, dw, db = self._empty((n, i), dt), self._empty((i, o), dt), self._empty((o,), dt)
        if dx.size:
            self._dense_gemm("dense_dx", dt, n, i, o, (dy, w), None, dx, (n, i, o))
        if dw.size:
            self._dense_gemm("dense_dw", dt, i, o, n, (x, dy), None, dw, (n, i, o))
        if o:
            self._launch("reduce.cu", "sum_nq", "PPiii", dt, (o, 1, 1), (BLOCK, 1, 1),
                         self._ptr(dy), self._ptr(db), n, o, 1)
        return dx, dw, db
