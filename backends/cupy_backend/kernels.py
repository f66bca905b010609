"""CUDA C sources of the CuPy backend's hand-written kernels, compiled once per dtype.

The matrix work goes to cuBLAS through ``cupy.matmul``; these kernels do the
memory-bound rest (im2col/col2im, re-ordering, pooling, softmax). Row kernels
run on 2-D grids with 32-bit index arithmetic; warp-per-row reductions loop
grid-stride. This module imports without CuPy: compiling happens on first use.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

_CTYPE = {"float32": "float", "float64": "double"}
_VEC = {"float32": ("float4", 4), "float64": ("double2", 2)}   # 16-byte vectors
_NEG_INF = {"float32": "__int_as_float(0xff800000)",
            "float64": "__longlong_as_double(0xfff0000000000000LL)"}

THREADS = 256
_MAX_BLOCKS = 132 * 32          # enough to fill an H100 many times over; loops cover the rest

_SOURCE = r"""
// Row kernels run on a 2-D grid: blockIdx.x is the row (up to 2^31 - 1 of them),
// blockIdx.y * blockDim.x + threadIdx.x the column. Index arithmetic stays 32-bit
// (64-bit division is emulated and made im2col 3x slower); only offsets are 64-bit.
#define ROW_COL(ncols) const int row = blockIdx.x; \
    const int col = blockIdx.y * blockDim.x + threadIdx.x; if (col >= (ncols)) return;

// True when (v, i) should replace (b, bi) as "the first maximum": NaN beats
// numbers (as in NumPy), ties go to the smaller index, bi < 0 means "none yet".
__device__ __forceinline__ bool better(T v, int i, T b, int bi) {
    if (bi < 0) return true;
    bool vn = isnan(v), bn = isnan(b);
    if (vn || bn) return vn && (!bn || i < bi);
    return v > b || (v == b && i < bi);
}

// cols[(c*K + k), n, t] = x[n, c, t + k]: the column matrix of the whole batch,
// laid out [C*K, N*Wo] so that one GEMM W[F, C*K] @ cols covers every example.
// One block copies one Wo-long row; blocks walk (n, c, k) with k fastest, so the
// K blocks reading one x row run together and all but the first read hit L2.
extern "C" __global__ void im2col(const T* __restrict__ x, T* __restrict__ cols,
                                  int N, int C, int W, int K, int Wo) {
    int b = blockIdx.x;                                    // b = (n*C + c)*K + k
    int nc = b / K, k = b - nc * K;
    int n = nc / C, c = nc - n * C;
    const T* src = x + (long long)nc * W + k;
    T* dst = cols + ((long long)(c * K + k) * N + n) * Wo;
    for (int t = threadIdx.x; t < Wo; t += blockDim.x) dst[t] = src[t];
}

// dx[n, c, t] = sum_k dcols[(c*K + k), n, t - k] over the taps that reach t
// (a gather: every dx element is written once, no atomics). Rows: N*C; columns: W.
extern "C" __global__ void col2im(const T* __restrict__ dcols, T* __restrict__ dx,
                                  int N, int C, int W, int K, int Wo) {
    ROW_COL(W)
    int n = row / C, c = row - n * C;
    T acc = 0;
    int k0 = col - Wo + 1 > 0 ? col - Wo + 1 : 0;
    int k1 = col < K - 1 ? col : K - 1;
    long long tap = (long long)N * Wo;                     // distance between taps k, k + 1
    const T* src = dcols + ((long long)(c * K) * N + n) * Wo + col;
    for (int k = k0; k <= k1; ++k) acc += src[k * tap - k];
    dx[(long long)row * W + col] = acc;
}

// y[n, f, t] = yr[f, n, t] + b[f]: the GEMM's [F, N*Wo] result back to batch-first.
// Rows: N*F (row = n*F + f); columns: Wo.
extern "C" __global__ void unfold_bias(const T* __restrict__ yr, const T* __restrict__ b,
                                       T* __restrict__ y, int N, int F, int Wo) {
    ROW_COL(Wo)
    int n = row / F, f = row - n * F;
    y[(long long)row * Wo + col] = yr[((long long)f * N + n) * Wo + col] + b[f];
}

// dyr[f, n, t] = dy[n, f, t]: batch-first gradient to the GEMM layout.
// Rows: F*N (row = f*N + n); columns: Wo.
extern "C" __global__ void fold(const T* __restrict__ dy, T* __restrict__ dyr,
                                int N, int F, int Wo) {
    ROW_COL(Wo)
    int f = row / N, n = row - f * N;
    dyr[(long long)row * Wo + col] = dy[((long long)n * F + f) * Wo + col];
}

// Rows: N*C; columns: Wo windows.
extern "C" __global__ void maxpool_fwd(const T* __restrict__ x, T* __restrict__ y,
                                       int* __restrict__ argmax, int W, int Wo,
                                       int size, int stride) {
    ROW_COL(Wo)
    const T* src = x + (long long)row * W;
    int start = col * stride, bi = -1;
    T best = 0;
    for (int s = 0; s < size; ++s) {
        T v = src[start + s];
        if (better(v, start + s, best, bi)) { best = v; bi = start + s; }
    }
    long long o = (long long)row * Wo + col;
    y[o] = best;
    argmax[o] = bi;
}

// Overlapping windows may share a maximum: scatter with atomicAdd into zeroed dx.
// Rows: N*C; columns: Wo windows.
extern "C" __global__ void maxpool_bwd_scatter(const T* __restrict__ dy,
                                               const int* __restrict__ argmax,
                                               T* __restrict__ dx, int W, int Wo) {
    ROW_COL(Wo)
    long long o = (long long)row * Wo + col;
    atomicAdd(dx + (long long)row * W + argmax[o], dy[o]);
}

// One warp per (n, c) row: mean, first max (+ index) and L2 norm over time.
extern "C" __global__ void global_pool_fwd(const T* __restrict__ x, T* __restrict__ y,
                                           int* __restrict__ argmax, int rows, int C, int W) {
    int warp = (int)(((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    int nwarps = (int)(((long long)gridDim.x * blockDim.x) >> 5);
    int lane = threadIdx.x & 31;
    for (; warp < rows; warp += nwarps) {
        const T* src = x + (long long)warp * W;
        T sum = 0, sq = 0, best = 0;
        int bi = -1;
        for (int t = lane; t < W; t += 32) {
            T v = src[t];
            sum += v;
            sq += v * v;
            if (better(v, t, best, bi)) { best = v; bi = t; }
        }
        for (int o = 16; o > 0; o >>= 1) {
            sum += __shfl_xor_sync(0xffffffffu, sum, o);
            sq += __shfl_xor_sync(0xffffffffu, sq, o);
            T b2 = __shfl_xor_sync(0xffffffffu, best, o);
            int i2 = __shfl_xor_sync(0xffffffffu, bi, o);
            if (i2 >= 0 && better(b2, i2, best, bi)) { best = b2; bi = i2; }
        }
        if (lane == 0) {
            int n = warp / C, c = warp - n * C;
            T* out = y + (long long)n * 3 * C;
            out[c] = sum / (T)W;
            out[C + c] = best;
            out[2 * C + c] = sqrt(sq);
            argmax[warp] = bi;
        }
    }
}

// Rows: N*C; columns: W.
extern "C" __global__ void global_pool_bwd(const T* __restrict__ x, const T* __restrict__ y,
                                           const int* __restrict__ argmax,
                                           const T* __restrict__ dy, T* __restrict__ dx,
                                           int C, int W) {
    ROW_COL(W)
    int n = row / C, c = row - n * C;
    const T* g = dy + (long long)n * 3 * C;
    T l2 = y[(long long)n * 3 * C + 2 * C + c];
    long long i = (long long)row * W + col;
    T v = g[c] / (T)W;
    if (l2 > 0) v += x[i] * (g[2 * C + c] / l2);
    if (argmax[row] == col) v += g[C + c];
    dx[i] = v;
}

// One warp per row of logits: max-shifted log-sum-exp, probabilities and,
// when labels are given, the row's negative log-likelihood.
extern "C" __global__ void softmax_rows(const T* __restrict__ logits, const int* __restrict__ labels,
                                        T* __restrict__ probs, T* __restrict__ nll,
                                        int N, int K, int with_labels) {
    int warp = (int)(((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    int nwarps = (int)(((long long)gridDim.x * blockDim.x) >> 5);
    int lane = threadIdx.x & 31;
    for (; warp < N; warp += nwarps) {
        const T* z = logits + (long long)warp * K;
        T m = NEG_INF;
        for (int k = lane; k < K; k += 32) m = max(m, z[k]);
        for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
        T s = 0;
        for (int k = lane; k < K; k += 32) s += exp(z[k] - m);
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        T ls = log(s);                     // shift first: z - m is exact, z - (m + ls) is not
        for (int k = lane; k < K; k += 32) probs[(long long)warp * K + k] = exp((z[k] - m) - ls);
        if (with_labels && lane == 0) nll[warp] = ls - (z[labels[warp]] - m);
    }
}

// ReLU forward and backward on 16-byte vectors (float4 / double2): ReLU is the
// network's activation, and vector loads make it run at memory speed.
extern "C" __global__ void relu_fwd_vec(const V* __restrict__ x, V* __restrict__ y, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        V v = x[i];
        T* p = reinterpret_cast<T*>(&v);
        #pragma unroll
        for (int j = 0; j < VN; ++j) p[j] = p[j] <= (T)0 ? (T)0 : p[j];
        y[i] = v;
    }
}

extern "C" __global__ void relu_bwd_vec(const V* __restrict__ x, const V* __restrict__ dy,
                                        V* __restrict__ dx, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        V a = x[i], g = dy[i];
        T* p = reinterpret_cast<T*>(&a);
        T* q = reinterpret_cast<T*>(&g);
        #pragma unroll
        for (int j = 0; j < VN; ++j) q[j] = q[j] * (T)(p[j] > (T)0);
        dx[i] = g;
    }
}

// d loss / d logits = (probs - onehot(labels)) / N. Rows: N; columns: K.
extern "C" __global__ void softmax_ce_bwd(const T* __restrict__ probs, const int* __restrict__ labels,
                                          T* __restrict__ g, int K, T inv_n) {
    ROW_COL(K)
    long long i = (long long)row * K + col;
    g[i] = (probs[i] - (labels[row] == col ? (T)1 : (T)0)) * inv_n;
}
"""


def source(dtype: str) -> str:
    """The kernels' source for one dtype (``T`` fixed by a typedef)."""
    vec, lanes = _VEC[dtype]
    return (f"typedef {_CTYPE[dtype]} T;\ntypedef {vec} V;\n#define VN {lanes}\n"
            f"#define NEG_INF {_NEG_INF[dtype]}\n" + _SOURCE)


@lru_cache(maxsize=None)
def _module(dtype: str):
    import cupy as cp
    return cp.RawModule(code=source(dtype), options=("--std=c++14",))


@lru_cache(maxsize=None)
def kernel(name: str, dtype: str):
    """The compiled kernel ``name`` for ``dtype`` (one NVRTC build per dtype, cached)."""
    return _module(dtype).get_function(name)


def launch(name: str, dtype: str, total: int, args: tuple, per_thread: int = 1) -> None:
    """Launch a grid-stride kernel over ``total`` work items (``per_thread`` threads each)."""
    if total <= 0:
        return
    threads = total * per_thread
    blocks = min((threads + THREADS - 1) // THREADS, _MAX_BLOCKS)
    kernel(name, dtype)((blocks,), (THREADS,), args)


def launch_blocks(name: str, dtype: str, blocks: int, cols: int, args: tuple) -> None:
    """Launch one block per row, its threads looping over the row's ``cols``."""
    if blocks <= 0 or cols <= 0:
        return
    if blocks >= 2 ** 31:
        raise ValueError(f"array too large for one launch ({blocks} rows)")
    kernel(name, dtype)((blocks,), (min(THREADS, (cols + 31) // 32 * 32),), args)


def launch_rows(name: str, dtype: str, rows: int, cols: int, args: tuple) -> None:
    """Launch a row kernel: one block row per row, blocks of up to 256 threads across."""
    if rows <= 0 or cols <= 0:
        return
    threads = min(THREADS, (cols + 31) // 32 * 32)
    across = (cols + threads - 1) // threads
    if rows >= 2 ** 31 or across > 65535:
        raise ValueError(f"array too large for one launch ({rows} rows of {cols})")
    kernel(name, dtype)((rows, across), (threads,), args)


def i32(v: int) -> np.int32:
    return np.int32(v)


def i64(v: int) -> np.int64:
    return np.int64(v)
