"""CUDA C sources of the CuPy backend's hand-written kernels, compiled once per dtype.

The matrix work goes to cuBLAS through ``cupy.matmul``; these kernels do the
memory-bound rest (im2col/col2im, re-ordering, pooling, softmax). All of them
loop grid-stride over 64-bit flat indices, so any size fits one launch. This
module imports without CuPy: compiling happens on first use.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

_CTYPE = {"float32": "float", "float64": "double"}
_NEG_INF = {"float32": "__int_as_float(0xff800000)",
            "float64": "__longlong_as_double(0xfff0000000000000LL)"}

THREADS = 256
_MAX_BLOCKS = 132 * 32          # enough to fill an H100 many times over; loops cover the rest

_SOURCE = r"""
#define LOOP(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; \
                        i < (n); i += (long long)blockDim.x * gridDim.x)

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
extern "C" __global__ void im2col(const T* __restrict__ x, T* __restrict__ cols,
                                  long long total, int N, int C, int W, int K, int Wo) {
    LOOP(i, total) {
        long long r = i / Wo;
        int t = (int)(i - r * Wo);
        int n = (int)(r % N);
        int ck = (int)(r / N);
        int c = ck / K, k = ck - c * K;
        cols[i] = x[((long long)n * C + c) * W + t + k];
    }
}

// dx[n, c, t] = sum_k dcols[(c*K + k), n, t - k] over the taps that reach t
// (a gather: every dx element is written once, no atomics).
extern "C" __global__ void col2im(const T* __restrict__ dcols, T* __restrict__ dx,
                                  long long total, int N, int C, int W, int K, int Wo) {
    LOOP(i, total) {
        long long r = i / W;
        int t = (int)(i - r * W);
        int c = (int)(r % C);
        int n = (int)(r / C);
        T acc = 0;
        int k0 = t - Wo + 1 > 0 ? t - Wo + 1 : 0;
        int k1 = t < K - 1 ? t : K - 1;
        for (int k = k0; k <= k1; ++k)
            acc += dcols[(((long long)(c * K + k)) * N + n) * Wo + (t - k)];
        dx[i] = acc;
    }
}

// y[n, f, t] = yr[f, n, t] + b[f]: the GEMM's [F, N*Wo] result back to batch-first.
extern "C" __global__ void unfold_bias(const T* __restrict__ yr, const T* __restrict__ b,
                                       T* __restrict__ y, long long total, int N, int F, int Wo) {
    LOOP(i, total) {
        long long r = i / Wo;
        int t = (int)(i - r * Wo);
        int f = (int)(r % F);
        int n = (int)(r / F);
        y[i] = yr[((long long)f * N + n) * Wo + t] + b[f];
    }
}

// dyr[f, n, t] = dy[n, f, t]: batch-first gradient to the GEMM layout.
extern "C" __global__ void fold(const T* __restrict__ dy, T* __restrict__ dyr,
                                long long total, int N, int F, int Wo) {
    LOOP(i, total) {
        long long r = i / Wo;
        int t = (int)(i - r * Wo);
        int n = (int)(r % N);
        int f = (int)(r / N);
        dyr[i] = dy[((long long)n * F + f) * Wo + t];
    }
}

extern "C" __global__ void maxpool_fwd(const T* __restrict__ x, T* __restrict__ y,
                                       int* __restrict__ argmax, long long total,
                                       int W, int Wo, int size, int stride) {
    LOOP(i, total) {
        long long r = i / Wo;
        int j = (int)(i - r * Wo);
        const T* row = x + r * W;
        int start = j * stride, bi = -1;
        T best = 0;
        for (int s = 0; s < size; ++s) {
            T v = row[start + s];
            if (better(v, start + s, best, bi)) { best = v; bi = start + s; }
        }
        y[i] = best;
        argmax[i] = bi;
    }
}

// Overlapping windows may share a maximum: scatter with atomicAdd into zeroed dx.
extern "C" __global__ void maxpool_bwd_scatter(const T* __restrict__ dy,
                                               const int* __restrict__ argmax,
                                               T* __restrict__ dx, long long total,
                                               int W, int Wo) {
    LOOP(i, total) {
        long long r = i / Wo;
        atomicAdd(dx + r * W + argmax[i], dy[i]);
    }
}

// One warp per (n, c) row: mean, first max (+ index) and L2 norm over time.
extern "C" __global__ void global_pool_fwd(const T* __restrict__ x, T* __restrict__ y,
                                           int* __restrict__ argmax, long long rows,
                                           int C, int W) {
    long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    long long nwarps = ((long long)gridDim.x * blockDim.x) >> 5;
    int lane = threadIdx.x & 31;
    for (; warp < rows; warp += nwarps) {
        const T* row = x + warp * W;
        T sum = 0, sq = 0, best = 0;
        int bi = -1;
        for (int t = lane; t < W; t += 32) {
            T v = row[t];
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
            long long n = warp / C;
            int c = (int)(warp - n * C);
            T* out = y + n * 3 * C;
            out[c] = sum / (T)W;
            out[C + c] = best;
            out[2 * C + c] = sqrt(sq);
            argmax[warp] = bi;
        }
    }
}

extern "C" __global__ void global_pool_bwd(const T* __restrict__ x, const T* __restrict__ y,
                                           const int* __restrict__ argmax,
                                           const T* __restrict__ dy, T* __restrict__ dx,
                                           long long total, int C, int W) {
    LOOP(i, total) {
        long long r = i / W;
        int t = (int)(i - r * W);
        long long n = r / C;
        int c = (int)(r - n * C);
        const T* g = dy + n * 3 * C;
        T l2 = y[n * 3 * C + 2 * C + c];
        T v = g[c] / (T)W;
        if (l2 > 0) v += x[i] * (g[2 * C + c] / l2);
        if (argmax[r] == t) v += g[C + c];
        dx[i] = v;
    }
}

// One warp per row of logits: max-shifted log-sum-exp, probabilities and,
// when labels are given, the row's negative log-likelihood.
extern "C" __global__ void softmax_rows(const T* __restrict__ logits, const int* __restrict__ labels,
                                        T* __restrict__ probs, T* __restrict__ nll,
                                        int N, int K, int with_labels) {
    long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    long long nwarps = ((long long)gridDim.x * blockDim.x) >> 5;
    int lane = threadIdx.x & 31;
    for (; warp < N; warp += nwarps) {
        const T* z = logits + warp * K;
        T m = NEG_INF;
        for (int k = lane; k < K; k += 32) m = max(m, z[k]);
        for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
        T s = 0;
        for (int k = lane; k < K; k += 32) s += exp(z[k] - m);
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        T ls = log(s);                     // shift first: z - m is exact, z - (m + ls) is not
        for (int k = lane; k < K; k += 32) probs[warp * K + k] = exp((z[k] - m) - ls);
        if (with_labels && lane == 0) nll[warp] = ls - (z[labels[warp]] - m);
    }
}

// d loss / d logits = (probs - onehot(labels)) / N
extern "C" __global__ void softmax_ce_bwd(const T* __restrict__ probs, const int* __restrict__ labels,
                                          T* __restrict__ g, long long total, int K, T inv_n) {
    LOOP(i, total) {
        long long r = i / K;
        int k = (int)(i - r * K);
        g[i] = (probs[i] - (labels[r] == k ? (T)1 : (T)0)) * inv_n;
    }
}
"""


def source(dtype: str) -> str:
    """The kernels' source for one dtype (``T`` fixed by a typedef)."""
    return (f"typedef {_CTYPE[dtype]} T;\n#define NEG_INF {_NEG_INF[dtype]}\n" + _SOURCE)


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


def i32(v: int) -> np.int32:
    return np.int32(v)


def i64(v: int) -> np.int64:
    return np.int64(v)
