// Batch normalisation and per-channel sums over x[N, C, S], on common.cuh's per-channel
// grid (C, G) (ChannelSlice): every example in one block of its channel, partial results
// merged in a fixed order, no atomics.

// Chan et al.'s merge of (count, mean, M2) summaries: b folded into a.
__device__ __forceinline__ void chan_merge(T& na, T& ma, T& qa, T nb, T mb, T qb)
{
    if (nb == T(0)) return;
    const T n = na + nb, d = mb - ma, fb = nb / n;
    ma += d * fb;
    qa += qb + d * d * na * fb;
    na = n;
}

// Warp-level merge in a fixed tree: lane 0 ends with the warp's summary.
__device__ __forceinline__ void chan_warp(T& n, T& m, T& q)
{
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const T nb = __shfl_down_sync(FULL_MASK, n, o);
        const T mb = __shfl_down_sync(FULL_MASK, m, o);
        const T qb = __shfl_down_sync(FULL_MASK, q, o);
        chan_merge(n, m, q, nb, mb, qb);
    }
}

// Block-level merge (every thread calls it once); thread 0 ends with the block's summary.
__device__ __forceinline__ void chan_block(T& n, T& m, T& q)
{
    __shared__ T sn[32], sm[32], sq[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    chan_warp(n, m, q);
    if (lane == 0) { sn[warp] = n; sm[warp] = m; sq[warp] = q; }
    __syncthreads();
    if (warp == 0) {
        n = lane < nwarps ? sn[lane] : T(0);
        m = lane < nwarps ? sm[lane] : T(0);
        q = lane < nwarps ? sq[lane] : T(0);
        chan_warp(n, m, q);
    }
}

// Statistics pass: part[c*G + g] gets the mean and M2 (sum of squared deviations from
// that mean) of block (c, g)'s values: each thread sums its values' offsets from the
// first of them (shifted sums, numerically sound and free of per-value divisions, so
// its loads can overlap), turns them into (count, mean, M2) and Chan's merge combines
// the threads. One read of x.
extern "C" __global__ void bn_stats_part(const T* __restrict__ x, T* __restrict__ pmean,
                                         T* __restrict__ pm2, int N, int C, long long S,
                                         int rows, int lts)
{
    const ChannelSlice sl{N, C, rows, lts, S};
    int k = 0;
    T shift = T(0), s1 = T(0), s2 = T(0);
    sl.each([&](long long i) {
        const T v = x[i];
        if (k++ == 0) shift = v;
        const T d = v - shift;
        s1 += d;
        s2 += d * d;
    });
    T n = T(k), mean = k ? shift + s1 / n : T(0), m2 = k ? max(T(0), s2 - s1 * (s1 / n)) : T(0);
    chan_block(n, mean, m2);
    if (threadIdx.x == 0) {
        const long long o = (long long)blockIdx.x * gridDim.y + blockIdx.y;
        pmean[o] = mean;
        pm2[o] = m2;
    }
}

// Warp 0 merges channel c's G partial summaries (lane-strided, then a fixed tree);
// lane 0 gets the channel's mean and biased variance M2 / (N*S). Block g's count is
// (min(N, g*rows + rows) - g*rows) * S.
__device__ __forceinline__ void channel_stats(const T* __restrict__ pmean,
                                              const T* __restrict__ pm2, int c, int G, int N,
                                              int rows, long long S, T& mean, T& var)
{
    const int lane = threadIdx.x & 31;
    T n = T(0), m = T(0), q = T(0);
    for (int g = lane; g < G; g += 32) {
        const T cnt = T((long long)(min(N, g * rows + rows) - g * rows) * S);
        chan_merge(n, m, q, cnt, pmean[(long long)c * G + g], pm2[(long long)c * G + g]);
    }
    chan_warp(n, m, q);
    mean = m;
    var = q / n;
}

// Normalisation pass, same grid as bn_stats_part: every block merges its channel's
// partials (identically), thread 0 of block (c, 0) stores mean[c] and
// invstd[c] = 1 / sqrt(var + eps), and y = (x - mean) * (invstd * gamma) + beta.
extern "C" __global__ void bn_normalize(const T* __restrict__ x, const T* __restrict__ gamma,
                                        const T* __restrict__ beta,
                                        const T* __restrict__ pmean, const T* __restrict__ pm2,
                                        T* __restrict__ y, T* __restrict__ mean_out,
                                        T* __restrict__ invstd_out, int N, int C, long long S,
                                        int rows, int lts, T eps)
{
    __shared__ T coef[2];
    const int c = blockIdx.x;
    if (threadIdx.x < 32) {
        T mean, var;
        channel_stats(pmean, pm2, c, gridDim.y, N, rows, S, mean, var);
        if (threadIdx.x == 0) {
            const T inv = T(1) / sqrt(var + eps);
            coef[0] = mean;
            coef[1] = inv * gamma[c];
            if (blockIdx.y == 0) { mean_out[c] = mean; invstd_out[c] = inv; }
        }
    }
    __syncthreads();
    const T mean = coef[0], scale = coef[1], shift = beta[c];
    const ChannelSlice sl{N, C, rows, lts, S};
    sl.each([&](long long i) { y[i] = (x[i] - mean) * scale + shift; });
}

// One warp per channel c < C (blocks of 256 threads): mean[c] and
// invstd[c] = 1 / sqrt(var + eps) from bn_stats_part's G partials, as bn_normalize
// computes them, for ops that normalise without writing y (fused.cu).
extern "C" __global__ void bn_stats_total(const T* __restrict__ pmean,
                                          const T* __restrict__ pm2, T* __restrict__ mean_out,
                                          T* __restrict__ invstd_out, int N, int C,
                                          long long S, int G, int rows, T eps)
{
    const int c = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    if (c >= C) return;                          // whole warps: c is the warp's
    T mean, var;
    channel_stats(pmean, pm2, c, G, N, rows, S, mean, var);
    if ((threadIdx.x & 31) == 0) {
        mean_out[c] = mean;
        invstd_out[c] = T(1) / sqrt(var + eps);
    }
}

// Inference, grid (C, G) as above: y = (x - rmean) * (gamma / sqrt(rvar + eps)) + beta.
extern "C" __global__ void bn_infer(const T* __restrict__ x, const T* __restrict__ gamma,
                                    const T* __restrict__ beta, const T* __restrict__ rmean,
                                    const T* __restrict__ rvar, T* __restrict__ y,
                                    int N, int C, long long S, int rows, int lts, T eps)
{
    const int c = blockIdx.x;
    const T mean = rmean[c], scale = gamma[c] / sqrt(rvar[c] + eps), shift = beta[c];
    const ChannelSlice sl{N, C, rows, lts, S};
    sl.each([&](long long i) { y[i] = (x[i] - mean) * scale + shift; });
}

// Grid-stride over the C channels: the running statistics, in place.
// var = 1 / invstd^2 - eps; rvar takes var * corr (corr = count / (count - 1), or 1).
extern "C" __global__ void bn_running_update(T* __restrict__ rmean, T* __restrict__ rvar,
                                             const T* __restrict__ mean,
                                             const T* __restrict__ invstd, int C,
                                             T momentum, T eps, T corr)
{
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x) {
        const T var = T(1) / (invstd[c] * invstd[c]) - eps;
        rmean[c] = (T(1) - momentum) * rmean[c] + momentum * mean[c];
        rvar[c] = (T(1) - momentum) * rvar[c] + momentum * var * corr;
    }
}

// Partial per-channel sums, grid (C, G) as above: pa[c*G + g] = sum of dy over block
// (c, g)'s values and, when with_x, pb[c*G + g] = sum of dy * (x - mean[c]) * invstd[c]
// (the batch-norm backward's dbeta and dgamma). Without x (a convolution's bias
// gradient) x, mean, invstd and pb are never touched: any valid pointer will do.
extern "C" __global__ void channel_sums(const T* __restrict__ dy, const T* __restrict__ x,
                                        const T* __restrict__ mean,
                                        const T* __restrict__ invstd, T* __restrict__ pa,
                                        T* __restrict__ pb, int N, int C, long long S,
                                        int rows, int lts, int with_x)
{
    const int c = blockIdx.x;
    const T mu = with_x ? mean[c] : T(0), inv = with_x ? invstd[c] : T(0);
    T a = T(0), b = T(0);
    const ChannelSlice sl{N, C, rows, lts, S};
    sl.each([&](long long i) {
        const T d = dy[i];
        a += d;
        if (with_x) b += d * ((x[i] - mu) * inv);
    });
    sum2_block(a, b);
    if (threadIdx.x == 0) {
        const long long o = (long long)c * gridDim.y + blockIdx.y;
        pa[o] = a;
        if (with_x) pb[o] = b;
    }
}

// Grid-stride over the C channels: out[c] = sum_g part[c*G + g], g in increasing order.
extern "C" __global__ void channel_sums_total(const T* __restrict__ part, T* __restrict__ out,
                                              int C, int G)
{
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x) {
        T s = T(0);
        for (int g = 0; g < G; ++g) s += part[(long long)c * G + g];
        out[c] = s;
    }
}

// Backward, grid (C, G) as above, after channel_sums with x: warp 0 adds the channel's
// partials (dbeta = sum dy, dgamma = sum dy * xhat; block (c, 0) stores them), then
// dx = gamma * invstd * (dy - dbeta / m - xhat * dgamma / m), xhat = (x - mean) * invstd,
// m = N*S: the contract's gamma * invstd / m * (m dy - dbeta - xhat dgamma).
extern "C" __global__ void bn_backward_dx(const T* __restrict__ x, const T* __restrict__ dy,
                                          const T* __restrict__ gamma,
                                          const T* __restrict__ mean,
                                          const T* __restrict__ invstd,
                                          const T* __restrict__ pa, const T* __restrict__ pb,
                                          T* __restrict__ dx, T* __restrict__ dgamma,
                                          T* __restrict__ dbeta, int N, int C, long long S,
                                          int rows, int lts)
{
    const int c = blockIdx.x, G = gridDim.y;
    T mdb, mdg;
    bn_grad_sums(pa, pb, c, G, (long long)N * S, blockIdx.y == 0, dgamma, dbeta, mdb, mdg);
    const T mu = mean[c], inv = invstd[c], k = gamma[c] * inv;
    const ChannelSlice sl{N, C, rows, lts, S};
    sl.each([&](long long i) {
        const T d = dy[i], xhat = (x[i] - mu) * inv;
        dx[i] = k * (d - mdb - xhat * mdg);
    });
}
