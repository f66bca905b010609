"""conv1d, conv2d and dense on ``mma.cu``'s kernels for both CUDA backends: at the
contract's low precisions (``tf32``, ``bf16``; see :mod:`genrecnn.engine.ops.precision`)
on tensor cores. The convolutions are implicit GEMMs (no column matrix), conv1d is the
conv2d of a one-row map, weight gradients and long dense reductions are split-K
(``splits.cu`` adds the slices) and bias gradients are norm.cu's per-channel sums
(:class:`.device.ChannelStatistics`). A conv2d of one input channel runs :mod:`.direct`'s
kernels with rounded operands instead: its reduction of a few taps would leave a
tensor-core tile mostly zeros. At "fp32" the same plans run mma.cu's exact float32 core
(fma, no tensor cores): the backends keep their own fp32 paths, and
``bench/gpu_kernels.py --implicit`` times these against them.

A mixin of both backend classes, planned once through the primitives of :mod:`.device`.
Pure Python: importing it needs no CUDA.
"""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.device import ChannelStatistics
from genrecnn.backends.cuda_kernels.direct import OneChannelConvOps
from genrecnn.backends.cuda_kernels.grids import Conv2dShape, cdiv
from genrecnn.errors import UnsupportedOp

PREC = {"fp32": 0, "tf32": 1, "bf16": 2}   # mma.cu's PREC for each precision
BK = 32                                 # mma.cu's reduction slice
# Block tiles by the output's rows: 32-row tiles for few filters or channels, so a
# 32-filter layer does not compute zeros three quarters of the time.
TILES = ({"BM": 32, "BN": 128, "WM": 1, "WN": 4},
         {"BM": 64, "BN": 128, "WM": 2, "WN": 4},
         {"BM": 128, "BN": 128, "WM": 2, "WN": 4})
MAX_COLUMNS = 2 ** 31 - 1               # the kernels index an output's columns with int
TENSOR_CORES = (8, 0)                   # mma.sync on TF32 and bf16: Ampere and later


def mma_tile(rows: int) -> dict:
    """The smallest tile that covers ``rows`` rows, else the largest."""
    return next((t for t in TILES if t["BM"] >= rows), TILES[-1])


def mma_block(tile: dict) -> tuple[int, int, int]:
    return tile["WM"] * tile["WN"] * 32, 1, 1


def conv1d_shape(x_shape, w_shape) -> Conv2dShape:
    """conv1d(x[N, C, W], w[F, C, K]) as the conv2d of a one-row map, stride 1, no padding."""
    (n, c, width), (f, _, k) = (tuple(int(s) for s in x_shape), tuple(int(s) for s in w_shape))
    return Conv2dShape(n, c, 1, width, f, 1, k, 1, 1, 0, 0, 1, width - k + 1)


def _geometry(g: Conv2dShape) -> tuple[int, ...]:
    return g.n, g.c, g.h, g.w, g.f, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.ho, g.wo


GEO_TYPES = "i" * 13


class LowPrecisionProducts(ChannelStatistics, OneChannelConvOps):
    """The tf32/bf16 products of a CUDA backend (see the module docstring)."""

    def _lp_mma(self, name: str, precision: str, m: int, nc: int, splits: int, types: str,
                args: tuple) -> None:
        if PREC[precision]:                       # tf32 and bf16 run on tensor cores
            cc = tuple(self._dev_compute_capability())
            if cc < TENSOR_CORES:
                raise UnsupportedOp(
                    f"precision {precision!r} needs tensor cores of compute capability "
                    f"{TENSOR_CORES[0]}.{TENSOR_CORES[1]} or later, and this GPU's is "
                    f"{cc[0]}.{cc[1]}; use --precision fp32")
        if nc > MAX_COLUMNS:
            raise ValueError(f"{name}: {nc} output columns are too many for one launch; "
                             "use a smaller batch")
        tile = mma_tile(m)
        grid = (cdiv(nc, tile["BN"]), cdiv(m, tile["BM"]), splits)
        self._dev_launch("mma.cu", name, types, "float32", grid, mma_block(tile), args,
                        {**tile, "PREC": PREC[precision]})

    def _lp_sum_splits(self, part, out, splits: int, size: int, bias=None, ncols: int = 1):
        grid, block = G.sum_splits_grid(size)
        self._dev_launch("splits.cu", "sum_splits", "PPiqPi", "float32", grid, block,
                        (part, out, splits, size, bias, ncols), {})

    # -- convolutions ----------------------------------------------------------------------

    def _lp_conv(self, x, w, b, g: Conv2dShape, out_shape, precision: str):
        y = self._dev_empty(out_shape, "float32")
        self._lp_mma("mma_conv2d_fwd", precision, g.f, g.n * g.p, 1, "PPPP" + GEO_TYPES,
                     (x, w, b, y, *_geometry(g)))
        return y

    def _lp_conv_dx(self, w, dy, g: Conv2dShape, x_shape, precision: str):
        dx = self._dev_empty(x_shape, "float32")
        self._lp_mma("mma_conv2d_dx", precision, g.c, g.n * g.h * g.w, 1, "PPP" + GEO_TYPES,
                     (dy, w, dx, *_geometry(g)))
        return dx

    def _lp_conv_params(self, x, dy, g: Conv2dShape, w_shape, precision: str):
        """(dw, db) of a convolution: split-K over the N*P positions (none: zeros)."""
        dw = self._dev_empty(w_shape, "float32")
        k = g.n * g.p
        splits, chunk = G.split_k(g.f, g.r, k, {**mma_tile(g.f), "BK": BK},
                                  self._dev_sm_count())
        part = dw if splits == 1 else self._dev_empty((splits, g.f * g.r), "float32")
        self._lp_mma("mma_conv2d_dw", precision, g.f, g.r, splits, "PPP" + GEO_TYPES + "i",
                     (x, dy, part, *_geometry(g), chunk))
        if splits > 1:
            self._lp_sum_splits(part, dw, splits, g.f * g.r)
        return dw, self._channel_total(dy, g.n, g.f, g.p)

    def _lp_conv2d(self, x, w, b, stride, padding, precision: str):
        g = G.conv2d_shape(x.shape, w.shape, stride, padding)
        if g.direct:
            return self._c1_forward(x, w, b, g, precision)
        return self._lp_conv(x, w, b, g, (g.n, g.f, g.ho, g.wo), precision)

    def _lp_conv2d_backward(self, x, w, dy, stride, padding, precision: str):
        g = G.conv2d_shape(x.shape, w.shape, stride, padding)
        dw, db = self._lp_conv2d_params(x, dy, g, tuple(w.shape), precision)
        return self._lp_conv_dx(w, dy, g, tuple(x.shape), precision), dw, db

    def _lp_conv2d_backward_params(self, x, w, dy, stride, padding, precision: str):
        g = G.conv2d_shape(x.shape, w.shape, stride, padding)
        return self._lp_conv2d_params(x, dy, g, tuple(w.shape), precision)

    def _lp_conv2d_params(self, x, dy, g: Conv2dShape, w_shape, precision: str):
        if g.direct:
            return self._c1_params(x, dy, g, precision)
        return self._lp_conv_params(x, dy, g, w_shape, precision)

    def _lp_conv1d(self, x, w, b, precision: str):
        g = conv1d_shape(x.shape, w.shape)
        return self._lp_conv(x, w, b, g, (g.n, g.f, g.wo), precision)

    def _lp_conv1d_backward(self, x, w, dy, precision: str):
        g = conv1d_shape(x.shape, w.shape)
        dw, db = self._lp_conv_params(x, dy, g, tuple(w.shape), precision)
        return self._lp_conv_dx(w, dy, g, tuple(x.shape), precision), dw, db

    def _lp_conv1d_backward_params(self, x, w, dy, precision: str):
        return self._lp_conv_params(x, dy, conv1d_shape(x.shape, w.shape), tuple(w.shape),
                                    precision)

    # -- dense -----------------------------------------------------------------------------

    def _lp_dense_gemm(self, name, precision, m, nc, k, inputs, bias, out, dims):
        """Dense kernel ``name`` into ``out`` [m, nc], split-K where it pays; the bias is
        added by the kernel, or by sum_splits after a split."""
        splits, chunk = G.split_k(m, nc, k, {**mma_tile(m), "BK": BK},
                                   self._dev_sm_count())
        dest = out if splits == 1 else self._dev_empty((splits, m * nc), "float32")
        head = (*inputs, bias if splits == 1 else None) if name == "mma_dense_fwd" else inputs
        self._lp_mma(name, precision, m, nc, splits, "P" * (len(head) + 1) + "iiii",
                     (*head, dest, *dims, chunk))
        if splits > 1:
            self._lp_sum_splits(dest, out, splits, m * nc, bias, nc)

    def _lp_dense(self, x, w, b, precision: str):
        (n, i), o = (int(s) for s in x.shape), int(w.shape[1])
        y = self._dev_empty((n, o), "float32")
        self._lp_dense_gemm("mma_dense_fwd", precision, n, o, i, (x, w), b, y, (n, i, o))
        return y

    def _lp_dense_backward(self, x, w, dy, precision: str):
        (n, i), o = (int(s) for s in x.shape), int(w.shape[1])
        dx, dw = self._dev_empty((n, i), "float32"), self._dev_empty((i, o), "float32")
        # an empty reduction (o or n zero) writes zeros: the kernels' slices are empty
        self._lp_dense_gemm("mma_dense_dx", precision, n, i, o, (dy, w), None, dx, (n, i, o))
        self._lp_dense_gemm("mma_dense_dw", precision, i, o, n, (x, dy), None, dw, (n, i, o))
        return dx, dw, self._channel_total(dy, n, o, 1)
