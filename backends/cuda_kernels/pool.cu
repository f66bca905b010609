// Max pooling along time (with argmax) and global mean / max / L2 pooling.

// True when (v, i) should replace (b, bi) as the first maximum: a NaN counts as
// larger than any number (the contract's rule), ties and NaN against NaN go to
// the smaller index.
__device__ __forceinline__ bool better(T v, int i, T b, int bi)
{
    const bool vn = isnan(v), bn = isnan(b);
    if (vn || bn) return vn && (!bn || i < bi);
    return v > b || (v == b && i < bi);
}

// One thread per output (row, j): the first maximum (or first NaN) of window j.
extern "C" __global__ void maxpool_fwd(const T* __restrict__ x, T* __restrict__ y,
                                       int* __restrict__ am, long long rows, int W, int Wo,
                                       int size, int stride)
{
    GRID_STRIDE(idx, rows * Wo) {
        const long long row = idx / Wo;
        const int j = (int)(idx - row * Wo), start = j * stride;
        const T* xr = x + row * W + start;
        T best = xr[0];
        int bi = 0;
        for (int k = 1; k < size; ++k) {
            const T v = xr[k];
            if (better(v, k, best, bi)) { best = v; bi = k; }
        }
        y[idx] = best;
        am[idx] = start + bi;
    }
}

// One thread per pooled output: dx[row, argmax] += dy[row, j] (dx zeroed first).
// Overlapping windows (stride < size) can share a maximum, hence atomicAdd
// (native for double on sm_60 and later).
extern "C" __global__ void maxpool_bwd(const T* __restrict__ dy, const int* __restrict__ am,
                                       T* __restrict__ dx, long long rows, int W, int Wo)
{
    GRID_STRIDE(idx, rows * Wo) {
        const long long row = idx / Wo;
        atomicAdd(dx + row * W + am[idx], dy[idx]);
    }
}

// One warp per row (n, c): y[n, c] = mean, y[n, C + c] = max (first one at
// am[n, c], NaN first), y[n, 2C + c] = L2 norm, all over the W steps of the row.
extern "C" __global__ void global_pool_fwd(const T* __restrict__ x, T* __restrict__ y,
                                           int* __restrict__ am, int N, int C, int W)
{
    const long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (row >= (long long)N * C) return;          // whole warps leave together
    const T* xr = x + row * W;
    T s = T(0), q = T(0), best = -(T)CUDART_INF;
    int bi = 0x7fffffff;
    if (lane < W) { best = xr[lane]; bi = lane; }
    for (int t = lane; t < W; t += 32) {
        const T v = xr[t];
        s += v;
        q += v * v;
        if (better(v, t, best, bi)) { best = v; bi = t; }
    }
    #pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        s += __shfl_down_sync(0xffffffffu, s, off);
        q += __shfl_down_sync(0xffffffffu, q, off);
        const T ob = __shfl_down_sync(0xffffffffu, best, off);
        const int oi = __shfl_down_sync(0xffffffffu, bi, off);
        if (better(ob, oi, best, bi)) { best = ob; bi = oi; }
    }
    if (lane == 0) {
        const long long n = row / C, c = row - n * C, base = n * 3 * C;
        y[base + c] = s / T(W);
        y[base + C + c] = best;
        y[base + 2 * C + c] = sqrt(q);
        am[row] = bi;
    }
}

// One thread per element: dx = x * dl2 / l2 (0 where l2 == 0) + dmean / W
// (+ dmax at the argmax).
extern "C" __global__ void global_pool_bwd(const T* __restrict__ x, const T* __restrict__ y,
                                           const int* __restrict__ am, const T* __restrict__ dy,
                                           T* __restrict__ dx, int N, int C, int W)
{
    GRID_STRIDE(idx, (long long)N * C * W) {
        const long long row = idx / W, n = row / C, c = row - n * C, base = n * 3 * C;
        const int t = (int)(idx - row * W);
        const T l2 = y[base + 2 * C + c];
        T v = (l2 > T(0)) ? x[idx] * (dy[base + 2 * C + c] / l2) : T(0);
        v += dy[base + c] / T(W);
        if (t == am[row]) v += dy[base + C + c];
        dx[idx] = v;
    }
}
