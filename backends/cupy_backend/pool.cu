// Max pooling along time (with the arg-max) and global mean / max / L2 pooling.

// True when (v, i) should replace (b, bi) as "the first maximum": NaN counts as
// larger than any number (the contract's rule, as NumPy's max), ties and NaN
// against NaN go to the smaller index; bi < 0 means "none yet".
__device__ __forceinline__ bool better(T v, int i, T b, int bi) {
    if (bi < 0) return true;
    bool vn = isnan(v), bn = isnan(b);
    if (vn || bn) return vn && (!bn || i < bi);
    return v > b || (v == b && i < bi);
}

// The first maximum (or first NaN) of each window. Rows: N*C; columns: Wo windows.
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

// One warp per (n, c) row: mean, first max or NaN (+ index) and L2 norm over time.
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
