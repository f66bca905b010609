"""Launch geometry of the kernel files in this package, for both CUDA backends.

The convolutions' and 2-D poolings' shapes and grids (the direct conv1d's
weight-gradient split among them), the per-channel split of the batch-norm reductions,
the dropout threshold, the grid-stride launches and the optimiser's launches. Pure
Python, so it imports without CUDA.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from genrecnn.engine.ops import conv2d_out, pool2d_out

UPDATE_SLOTS = 32               # arrays one launch of a slot-table kernel takes (R32)
THREADS = 256
MAX_GRID_Y = 65535
DIRECT_MAX_TAPS = 49            # one-channel convolutions up to 7 x 7 run conv2d_c1.cu
CHANNEL_MIN_VALUES = 4096       # a batch-norm block gets at least this many values
CHANNEL_BLOCKS_PER_SM = 8       # per-channel kernels: enough 256-thread blocks to fill an SM
COPY_BLOCKS = 8192              # enough blocks of a copy to fill any current GPU a few times
DIRECT_CONV1D_MAX_FILTERS = 64  # conv1d with at most this many filters runs conv1d_direct.cu


def cdiv(a: int, b: int) -> int:
    """Ceiling division: blocks (or tiles) of ``b`` that cover ``a``."""
    return -(-a // b)


class Conv2dShape(NamedTuple):
    """Every size of one convolution call (also the key of its cached column matrix)."""

    n: int
    c: int
    h: int
    w: int
    f: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    ho: int
    wo: int

    @property
    def p(self) -> int:
        """Output positions per example and filter."""
        return self.ho * self.wo

    @property
    def r(self) -> int:
        """Taps per filter: rows of the column matrix."""
        return self.c * self.kh * self.kw

    @property
    def direct(self) -> bool:
        """One input channel and few taps: the direct kernels beat im2col + GEMM."""
        return self.c == 1 and self.kh * self.kw <= DIRECT_MAX_TAPS

    @property
    def geometry_args(self) -> tuple[int, ...]:
        """(H, W, sh, sw, ph, pw) as the kernels take them."""
        return self.h, self.w, self.sh, self.sw, self.ph, self.pw


def conv2d_shape(x_shape, w_shape, stride, padding) -> Conv2dShape:
    n, c, h, w = (int(s) for s in x_shape)
    f, _, kh, kw = (int(s) for s in w_shape)
    sh, sw = (int(s) for s in stride)
    ph, pw = (int(s) for s in padding)
    return Conv2dShape(n, c, h, w, f, kh, kw, sh, sw, ph, pw,
                       conv2d_out(h, kh, sh, ph), conv2d_out(w, kw, sw, pw))


class Pool2dShape(NamedTuple):
    """Every size of one 2-D pooling of x[N, C, H, W] (maxpool2d's windows)."""

    n: int
    c: int
    h: int
    w: int
    ho: int
    wo: int
    kh: int
    kw: int
    sh: int
    sw: int

    @property
    def window_args(self) -> tuple[int, ...]:
        """(H, W, Ho, Wo, kh, kw, sh, sw) as the kernels take them."""
        return self.h, self.w, self.ho, self.wo, self.kh, self.kw, self.sh, self.sw


def pool2d_shape(x_shape, size, stride) -> Pool2dShape:
    n, c, h, w = (int(s) for s in x_shape)
    kh, kw = (int(s) for s in size)
    sh, sw = (int(s) for s in stride)
    return Pool2dShape(n, c, h, w, pool2d_out(h, kh, sh), pool2d_out(w, kw, sw), kh, kw, sh, sw)


def rows_grid(rows: int, cols: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(grid, block) for a kernel with one block row per row and threads striding over
    ``cols`` (block y splits the columns; the kernels loop past 65535 of them)."""
    threads = min(THREADS, max(32, cdiv(cols, 32) * 32))
    return (rows, max(1, min(MAX_GRID_Y, cdiv(cols, threads))), 1), (threads, 1, 1)


def copy_rows_grid(rows: int, cols: int):
    """rows_grid for the copy-like row kernels (batches.cu, im2col2d, col2im2d, and
    fused_bwd_dz, whose every block first adds its channel's partial sums): block y
    splits a row only while the grid has fewer than COPY_BLOCKS blocks, so each thread
    copies several values (loads in flight together) instead of launching a block per
    256 values."""
    grid, block = rows_grid(rows, cols)
    return (grid[0], max(1, min(grid[1], cdiv(COPY_BLOCKS, max(1, rows)))), 1), block


def flat_blocks(total: int, sm_count: int) -> int:
    """Blocks of THREADS for a grid-stride kernel over ``total`` items (at most 32 per SM:
    the loop covers the rest)."""
    return max(1, min(cdiv(total, THREADS), sm_count * 32))


def filter_groups(n: int, f: int, p: int, sm_count: int) -> tuple[int, int]:
    """(groups, filters per group) for conv2d_c1_fwd: split the filters only when the
    examples and positions alone give fewer than two blocks per SM."""
    blocks = n * min(MAX_GRID_Y, cdiv(p, THREADS))
    groups = max(1, min(f, cdiv(2 * sm_count, blocks)))
    per = cdiv(f, groups)
    return cdiv(f, per), per


def c1_dw_filters(kk: int) -> int:
    """Filters one thread of conv2d_c1_dw_part serves (its C1_FPB for KK = kk taps)."""
    return 4 if kk <= 9 else 2 if kk <= 25 else 1


def c1_dw_plan(n: int, f: int, p: int, kk: int, sm_count: int) -> tuple[int, int, int]:
    """(filter blocks, G, chunk) of conv2d_c1_dw_part: G blocks per filter group, each
    over ``chunk`` consecutive flat positions n*P + p, about four blocks per SM in all
    but at least CHANNEL_MIN_VALUES positions a block."""
    fblocks = cdiv(f, c1_dw_filters(kk))
    total = n * p
    parts = max(1, min(cdiv(4 * sm_count, fblocks), total // CHANNEL_MIN_VALUES))
    chunk = max(1, cdiv(total, parts))
    return fblocks, max(1, cdiv(total, chunk)), chunk


def channel_split(n: int, c: int, s: int, sm_count: int) -> tuple[int, int, int]:
    """(G, rows, lts) for the per-channel kernels of norm.cu: G blocks per channel,
    each over ``rows`` examples; 2^lts threads along the S positions. G gives the GPU
    about CHANNEL_BLOCKS_PER_SM blocks per SM but keeps at least CHANNEL_MIN_VALUES
    values per block."""
    want = cdiv(CHANNEL_BLOCKS_PER_SM * sm_count, max(1, c))
    most = max(1, (n * s) // CHANNEL_MIN_VALUES)
    rows = max(1, cdiv(n, max(1, min(n, want, most))))
    lts = min(8, max(0, (s - 1).bit_length()))
    return max(1, cdiv(n, rows)), rows, lts


# The tiles of conv1d_direct.cu (its FWD_T, FWD_F, DW_F, DW_T): the launches must match.
CONV1D_FWD_POSITIONS = 256      # output positions of one example a forward block takes
CONV1D_FWD_THREADS = 128
CONV1D_FILTERS = 32             # filters a block takes, forward and weight gradient
CONV1D_DW_STEPS = {4: 64, 8: 32}    # output positions of one unit of dw, by item size


def conv1d_direct_fwd_grid(n: int, f: int, wo: int):
    """(grid, block) of conv1d_direct_fwd: 256 positions x 32 filters of one example for
    each block of 128 threads."""
    return ((cdiv(wo, CONV1D_FWD_POSITIONS), cdiv(f, CONV1D_FILTERS), n),
            (CONV1D_FWD_THREADS, 1, 1))


def split_k(m: int, n: int, k: int, tile: dict, sm_count: int) -> tuple[int, int]:
    """(splits, chunk) of a reduction of length ``k`` into an m x n output on ``tile``
    (BM x BN blocks, BK-long slices): split-K when the output has too few tiles to fill
    the GPU twice and the reduction is long (at most 4 blocks an SM, slices of at least
    128, under 64M partial sums); chunks are whole slices."""
    tiles = cdiv(m, tile["BM"]) * cdiv(n, tile["BN"])
    splits = 1
    if tiles < 2 * sm_count and k >= 256:
        splits = max(1, min(cdiv(4 * sm_count, tiles), k // 128, (1 << 26) // max(1, m * n)))
    chunk = cdiv(cdiv(max(k, 1), splits), tile["BK"]) * tile["BK"]
    return cdiv(max(k, 1), chunk), chunk


def sum_splits_grid(size: int):
    """(grid, block) of splits.cu's sum_splits over ``size`` values a slice."""
    return (max(1, cdiv(size, 32)), 1, 1), (32, 8, 1)


class Conv1dDwPlan(NamedTuple):
    """How conv1d_direct_dw tiles the channels and splits the N*Wo reduction."""

    grid: tuple[int, int, int]
    channels: int       # channels per block (DW_C): 64, or 32 where C <= 32
    per: int            # (example, time-slice) units a split sums
    size: int           # values of one split: dw (F*C*K) then db (F)

    @property
    def splits(self) -> int:
        return self.grid[2]

    @property
    def block(self) -> tuple[int, int, int]:
        return 4 * self.channels, 1, 1


def conv1d_dw_plan(n: int, c: int, width: int, f: int, k: int, itemsize: int,
                   sm_count: int) -> Conv1dDwPlan:
    """Splits enough for about four blocks per SM over the (channel, filter) tiles;
    a unit is one example's slice of 64 (float64: 32) output positions."""
    channels = 32 if c <= 32 else 64
    tiles = cdiv(c, channels) * cdiv(f, CONV1D_FILTERS)
    units = n * cdiv(width - k + 1, CONV1D_DW_STEPS[itemsize])
    per = max(1, cdiv(units, max(1, min(units, cdiv(4 * sm_count, tiles)))))
    return Conv1dDwPlan((cdiv(c, channels), cdiv(f, CONV1D_FILTERS), cdiv(units, per)),
                        channels, per, f * c * k + f)


def positions(shape) -> int:
    """Values per example and channel of x[N, C, ...] (1 for x[N, C])."""
    return math.prod(int(s) for s in shape[2:])


def dropout_threshold(rate: float) -> tuple[int, float]:
    """(keep_from, scale): element i is kept iff (h >> 8) >= keep_from, which is exactly
    the contract's (h >> 8) / 2^24 >= rate (rate * 2^24 is exact in a double)."""
    return math.ceil(float(rate) * (1 << 24)), 1.0 / (1.0 - float(rate))


def variance_correction(count: int) -> float:
    """count / (count - 1): the unbiased running variance; 1 when count is 1."""
    return count / (count - 1) if count > 1 else 1.0


def warp_rows_grid(rows: int):
    """(grid, block) of a kernel with one warp per row and no loop over rows
    (global_pool_fwd, softmax_fwd): every row gets its warp."""
    return (max(1, cdiv(rows * 32, THREADS)), 1, 1), (THREADS, 1, 1)


def loss_blocks(n: int) -> int:
    """Blocks of softmax_xent_acc: one warp per row, at most 1024 blocks (one atomicAdd
    pair each)."""
    return max(1, min(1024, cdiv(n, THREADS // 32)))


def update_launches(sizes: list[int], sm_count: int):
    """(first, last, grid) of each sgd_many / adam_many launch over parameters of these sizes:
    UPDATE_SLOTS parameters a launch, one block row each."""
    out = []
    for s in range(0, len(sizes), UPDATE_SLOTS):
        chunk = sizes[s:s + UPDATE_SLOTS]
        x = max(1, min(cdiv(max(chunk), THREADS), 4 * sm_count))
        out.append((s, s + len(chunk), (x, len(chunk), 1)))
    return out


def update_args(arrays: list[list], sizes: list[int], first: int, last: int) -> list:
    """The kernel's by-value arguments: UPDATE_SLOTS slots of each of the four array
    lists (param, grad, state a, state b; unused slots repeat the first array), then
    the sizes (0 in unused slots)."""
    args = []
    for group in arrays:
        chunk = list(group[first:last])
        args += chunk + [chunk[0]] * (UPDATE_SLOTS - len(chunk))
    return args + list(sizes[first:last]) + [0] * (UPDATE_SLOTS - (last - first))


def fused_args(arrays: list, sizes: list[int], first: int, last: int) -> list:
    """collective.cu's by-value arguments for arrays first..last: their slots and sizes
    (as :func:`update_args`), then each one's offset in the fused buffer (0 in unused
    slots)."""
    offsets = [sum(sizes[:first])]
    for n in sizes[first:last - 1]:
        offsets.append(offsets[-1] + n)
    return (update_args([arrays], sizes, first, last) + offsets
            + [0] * (UPDATE_SLOTS - (last - first)))
