// The fused block op: batch norm -> ReLU -> 2-D max pooling of z[N, C, H, W]. Training reads
// z twice forward (norm.cu's statistics, then one pooling pass) and writes only the pooled
// map; inference is the pooling pass alone; the backward sums over the pooled outputs, then
// makes one dense pass over z. No normalised full-size map is ever written.
//
// y = (z - mean) * scale + shift is monotone in z for each channel, so a window's first
// maximum of y is the first maximum of z * sgn, sgn = 1 where scale > 0, -1 where
// scale < 0 and 0 where scale == 0 (z * 0 is 0, so the window's first position wins,
// unless z holds a NaN or an infinity, where y is NaN too); a NaN scale makes every key
// NaN, as it makes every y. window_argmax (common.cuh) keeps max pooling's NaN rule.
// Pooling uses maps.cu's grid: (N*C, up to 65535), block x the plane (n, c), threads
// (and block y) striding over the plane's positions; windows that do not fit are dropped.

__device__ __forceinline__ T pool_sign(T scale)
{
    return scale > T(0) ? T(1) : scale < T(0) ? T(-1) : scale * T(0);
}

// p[plane, q] = relu(y at window q's argmax) and am[plane, q] = that position h*W + w
// (am may be null). ReLU lets NaN through, as elementwise.cu's does.
__device__ __forceinline__ void pool_norm_relu(const T* __restrict__ z, T* __restrict__ p,
                                               int* __restrict__ am, T mean, T scale, T shift,
                                               int H, int W, int Ho, int Wo, int kh, int kw,
                                               int sh, int sw)
{
    const int plane = blockIdx.x, Q = Ho * Wo;
    const T* __restrict__ src = z + (long long)plane * H * W;
    const T sgn = pool_sign(scale);
    for (int q = blockIdx.y * blockDim.x + threadIdx.x; q < Q; q += gridDim.y * blockDim.x) {
        const int i = q / Wo, j = q - i * Wo;
        T key;
        const int bi = window_argmax(src, W, i * sh, j * sw, kh, kw,
                                     [sgn](T v) { return v * sgn; }, key);
        const T v = (src[bi] - mean) * scale + shift;
        const long long o = (long long)plane * Q + q;
        p[o] = v <= T(0) ? T(0) : v;
        if (am) am[o] = bi;
    }
}

// Training forward, after norm.cu's bn_stats_part and bn_stats_total: bn_normalize's
// arithmetic, y = (z - mean) * (invstd * gamma) + beta, at the pooled positions only.
extern "C" __global__ void fused_fwd_train(const T* __restrict__ z, const T* __restrict__ gamma,
                                           const T* __restrict__ beta,
                                           const T* __restrict__ mean,
                                           const T* __restrict__ invstd, T* __restrict__ p,
                                           int* __restrict__ am, int C, int H, int W, int Ho,
                                           int Wo, int kh, int kw, int sh, int sw)
{
    const int c = blockIdx.x % C;
    pool_norm_relu(z, p, am, mean[c], invstd[c] * gamma[c], beta[c], H, W, Ho, Wo, kh, kw,
                   sh, sw);
}

// Inference: bn_infer's arithmetic, y = (z - rmean) * (gamma / sqrt(rvar + eps)) + beta.
extern "C" __global__ void fused_fwd_infer(const T* __restrict__ z, const T* __restrict__ gamma,
                                           const T* __restrict__ beta,
                                           const T* __restrict__ rmean,
                                           const T* __restrict__ rvar, T* __restrict__ p,
                                           int C, int H, int W, int Ho, int Wo, int kh, int kw,
                                           int sh, int sw, T eps)
{
    const int c = blockIdx.x % C;
    pool_norm_relu(z, p, nullptr, rmean[c], gamma[c] / sqrt(rvar[c] + eps), beta[c], H, W,
                   Ho, Wo, kh, kw, sh, sw);
}

// Backward 1 of 2, norm.cu's per-channel grid (C, G) over the pooled [N, C, Q]
// (ChannelSlice): dy is g = (p > 0 ? dp : 0) at each argmax and zero elsewhere, so
// pa[c*G + g] = sum of g (dbeta) and pb[c*G + g] = sum of g * zhat at the argmax
// (dgamma), zhat = (z - mean) * invstd, over block (c, g)'s pooled outputs: the
// arithmetic of norm.cu's channel_sums on the values that are not zero.
extern "C" __global__ void fused_bwd_sums(const T* __restrict__ z, const T* __restrict__ mean,
                                          const T* __restrict__ invstd,
                                          const int* __restrict__ am, const T* __restrict__ p,
                                          const T* __restrict__ dp, T* __restrict__ pa,
                                          T* __restrict__ pb, int N, int C, long long Q,
                                          int HW, int rows, int lts)
{
    const int c = blockIdx.x;
    const T mu = mean[c], inv = invstd[c];
    T a = T(0), b = T(0);
    const ChannelSlice sl{N, C, rows, lts, Q};
    sl.each_in_plane([&](long long plane, long long i) {
        const T g = p[i] > T(0) ? dp[i] : T(0);
        a += g;
        b += g * ((z[plane * HW + am[i]] - mu) * inv);
    });
    sum2_block(a, b);
    if (threadIdx.x == 0) {
        const long long o = (long long)c * gridDim.y + blockIdx.y;
        pa[o] = a;
        pb[o] = b;
    }
}

// Backward 2 of 2, the pooling grid over z's planes: warp 0 adds the channel's G
// partials (blocks of plane c, column 0 store dbeta[c] and dgamma[c]), then every position
// gets dz = gamma * invstd * (dy - dbeta / M - zhat * dgamma / M), M = N*H*W (norm.cu's
// bn_backward_dx), dy gathered from the windows holding the position whose argmax it is
// (none, one, or several where windows overlap: no atomics).
extern "C" __global__ void fused_bwd_dz(const T* __restrict__ z, const T* __restrict__ gamma,
                                        const T* __restrict__ mean,
                                        const T* __restrict__ invstd,
                                        const int* __restrict__ am, const T* __restrict__ p,
                                        const T* __restrict__ dp, const T* __restrict__ pa,
                                        const T* __restrict__ pb, T* __restrict__ dz,
                                        T* __restrict__ dgamma, T* __restrict__ dbeta, int N,
                                        int C, int H, int W, int Ho, int Wo, int kh, int kw,
                                        int sh, int sw, int G)
{
    const int plane = blockIdx.x, c = plane % C, HW = H * W;
    T mdb, mdg;
    bn_grad_sums(pa, pb, c, G, (long long)N * HW, plane < C && blockIdx.y == 0, dgamma, dbeta,
                 mdb, mdg);
    const T mu = mean[c], inv = invstd[c], k = gamma[c] * inv;
    const long long zo = (long long)plane * HW, po = (long long)plane * Ho * Wo;
    for (int s = blockIdx.y * blockDim.x + threadIdx.x; s < HW; s += gridDim.y * blockDim.x) {
        const int h = s / W, w = s - h * W, j1 = min(w / sw, Wo - 1);
        // the windows (i, j) holding (h, w), i*sh <= h < i*sh + kh and j*sw <= w < j*sw + kw,
        // from the last one down (at most ceil(kh / sh) * ceil(kw / sw) of them)
        T d = T(0);
        for (int i = min(h / sh, Ho - 1); i >= 0 && i * sh + kh > h; --i)
            for (int j = j1; j >= 0 && j * sw + kw > w; --j) {
                const long long o = po + i * Wo + j;
                if (am[o] == s && p[o] > T(0)) d += dp[o];
            }
        const T zhat = (z[zo + s] - mu) * inv;
        dz[zo + s] = k * (d - mdb - zhat * mdg);
    }
}
