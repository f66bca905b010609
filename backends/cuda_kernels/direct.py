"""The one-channel convolutions of both CUDA backends (``conv2d_c1.cu``: the first layer
of a spectrogram CNN, x read in place, the taps in registers), at every precision: at
"tf32" and "bf16" the kernels round x, w and dy to the precision before each product
(exact in float32, so only the order of the float32 sums differs from the tensor cores'),
where an implicit GEMM would spend most of its tile on the zeros of a 9-tap reduction.

A mixin of both backend classes, planned once through the primitives of :mod:`.device`.
Pure Python: importing it needs no CUDA.
"""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.device import BLOCK, Launches
from genrecnn.backends.cuda_kernels.grids import Conv2dShape

ROUND = {"fp32": 0, "tf32": 13, "bf16": 16}   # low bits each operand drops (conv2d_c1.cu)


class OneChannelConvOps(Launches):
    """conv2d forward and (dw, db) for ``g.direct`` shapes (one input channel, few taps)."""

    def _c1_forward(self, x, w, b, g: Conv2dShape, precision: str = "fp32"):
        y = self._dev_empty((g.n, g.f, g.ho, g.wo), x.dtype)
        groups, per = G.filter_groups(g.n, g.f, g.p, self._dev_sm_count())
        grid, block = G.rows_grid(g.n * groups, g.p)
        self._dev_launch("conv2d_c1.cu", "conv2d_c1_fwd", "PPPP" + "i" * 11, x.dtype, grid,
                         block, (x, w, b, y, *g.geometry_args, g.wo, g.p, g.f, groups, per),
                         self._c1_consts(g, precision))
        return y

    def _c1_params(self, x, dy, g: Conv2dShape, precision: str = "fp32"):
        """(dw, db): per-block partial sums over the N*P positions, then their fixed-order
        total; db sums dy itself (no rounding: it is no product)."""
        kk, consts = g.kh * g.kw, self._c1_consts(g, precision)
        fblocks, parts, chunk = G.c1_dw_plan(g.n, g.f, g.p, kk, self._dev_sm_count())
        part = self._dev_empty((g.f * parts * (kk + 1),), x.dtype)
        self._dev_launch("conv2d_c1.cu", "conv2d_c1_dw_part", "PPP" + "i" * 10 + "q", x.dtype,
                         (fblocks, parts, 1), BLOCK,
                         (x, dy, part, g.n, *g.geometry_args, g.ho, g.wo, g.f, chunk), consts)
        dw, db = self._dev_empty((g.f, 1, g.kh, g.kw), x.dtype), self._dev_empty((g.f,), x.dtype)
        self._flat_launch("conv2d_c1.cu", "conv2d_c1_dw_sum", "PPPii", x.dtype, g.f * (kk + 1),
                          (part, dw, db, g.f, parts), consts)
        return dw, db

    @staticmethod
    def _c1_consts(g: Conv2dShape, precision: str) -> dict:
        return {"KH": g.kh, "KW": g.kw, "ROUND": ROUND[precision]}
