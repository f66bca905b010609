"""The PyCUDA backend's tiled GEMMs (``gemm.cu``), which conv1d, conv2d and dense run on:
the tiling for an output's size and, where an output has too few tiles to fill the GPU,
the split of the reduction (split-K) whose slices ``splits.cu``'s ``sum_splits`` adds.
A mixin of :class:`~.backend.PycudaBackend` (see :class:`~.host.PycudaHost`).
"""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.grids import THREADS as BLOCK, cdiv

from .host import HostBase

# Tilings (block tile BM x BN, reduction slice BK, per-thread TM x TN); all use 256 threads.
SMALL_TILE = {"BM": 64, "BN": 64, "BK": 16, "TM": 4, "TN": 4}
LARGE_TILE = {"BM": 128, "BN": 128, "BK": 8, "TM": 8, "TN": 8}
NARROW_TILE = {"BM": 32, "BN": 128, "BK": 16, "TM": 2, "TN": 8}   # <= 32 rows (e.g. 32 filters)


class GemmOps(HostBase):
    """Tiling, split-K and the GEMM launches of ``gemm.cu``."""

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
    def _sum_splits(self, dt, part, out, splits, size, bias=None, ncols=1):
        """out = the sum of part's ``splits`` slices of ``size`` values (+ bias[i % ncols])."""
        self._launch("splits.cu", "sum_splits", "PPiqPi", dt, *G.sum_splits_grid(size),
                     self._ptr(part), self._ptr(out), splits, size,
                     0 if bias is None else self._ptr(bias), ncols)

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
        self._gemm("conv_taps_dw", dt, f, ck, splits, tile,
                   (self._ptr(x), self._ptr(dy), self._ptr(part), n, c, width, f, nper, tchunk, ts),
                   "PPPiiiiiii", KW=k)
        if splits > 1:
            self._sum_splits(dt, part, dw, splits, f * ck)

    # -- dense -----------------------------------------------------------------------------

    def _split_plan(self, m: int, n: int, r: int):
        """(tile, splits, chunk) for an m x n output summed over r: split-K when the
        output has too few tiles to fill the GPU and the reduction is long."""
        tile = self._tile(m, n, 1)
        return (tile, *G.split_k(m, n, r, tile, self.sm_count))

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
