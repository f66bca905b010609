// Batches cut from a training set held on the device (crops, SpecAugment masks, mixup)
// and the cross-entropy that accumulates on the device.

// Grid (B*H, a few): block x is the row (b, h) = (x / H, x % H); threads (and
// block y) stride over t < width:
// x[b, h, t] = data[index[b], h, start[b] + t]; the first thread of row (b, 0) also
// stores y[b] = labels[index[b]].
extern "C" __global__ void gather_crops(const T* __restrict__ data,
                                        const int* __restrict__ labels,
                                        const int* __restrict__ index,
                                        const int* __restrict__ start, T* __restrict__ x,
                                        int* __restrict__ y, int H, long long Tlen, int width)
{
    const int row = blockIdx.x, b = row / H, h = row - b * H, m = index[b];
    const T* __restrict__ src = data + ((long long)m * H + h) * Tlen + start[b];
    T* __restrict__ dst = x + (long long)row * width;
    #pragma unroll 4
    for (int t = blockIdx.y * blockDim.x + threadIdx.x; t < width; t += gridDim.y * blockDim.x)
        dst[t] = src[t];
    if (h == 0 && blockIdx.y == 0 && threadIdx.x == 0) y[b] = labels[m];
}

// Grid (B*H, up to 65535) over the rows (b, h) of x[B, H, W]; threads stride over t:
// out = 0 where f0[b] <= h < f0[b] + fw[b] or t0[b] <= t < t0[b] + tw[b], else x
// (the bounds in 64 bits, so spans reaching past the map are simply clipped).
extern "C" __global__ void mask_spans(const T* __restrict__ x, T* __restrict__ out,
                                      const int* __restrict__ f0, const int* __restrict__ fw,
                                      const int* __restrict__ t0, const int* __restrict__ tw,
                                      int H, int W)
{
    const int row = blockIdx.x, b = row / H, h = row - b * H;
    const bool band = h >= f0[b] && (long long)h < (long long)f0[b] + fw[b];
    const long long lo = t0[b], hi = lo + tw[b];
    const long long base = (long long)row * W;
    #pragma unroll 4
    for (int t = blockIdx.y * blockDim.x + threadIdx.x; t < W; t += gridDim.y * blockDim.x)
        out[base + t] = (band || (t >= lo && t < hi)) ? T(0) : x[base + t];
}

// Grid (B, up to 65535) over the examples; threads stride over the S values of each:
// y[b, s] = lam[b] * x[b, s] + (1 - lam[b]) * x[perm[b], s].
extern "C" __global__ void mix_pairs(const T* __restrict__ x, const int* __restrict__ perm,
                                     const T* __restrict__ lam, T* __restrict__ y, long long S)
{
    const int b = blockIdx.x;
    const T l = lam[b], r = T(1) - l;
    const T* __restrict__ xa = x + (long long)b * S;
    const T* __restrict__ xb = x + (long long)perm[b] * S;
    T* __restrict__ dst = y + (long long)b * S;
    #pragma unroll 4
    for (long long s = (long long)blockIdx.y * blockDim.x + threadIdx.x; s < S;
         s += (long long)gridDim.y * blockDim.x)
        dst[s] = l * xa[s] + r * xb[s];
}

// One warp per row of logits[N, K] (rows grid-strided over warps): max-shifted softmax
// into probs, then per row loss = -(lam log p[a] + (1 - lam) log p[b]) and credit =
// lam [argmax p == a] + (1 - lam) [argmax p == b] (first maximum). With label smoothing
// eps > 0 the loss is (1 - eps) times that plus eps (log s - mean_k (z[k] - m)), i.e.
// -eps mean_k log p[k] (eps 0 leaves the loss untouched). Each block adds its rows' sums
// to stats[0] and stats[1] with one atomicAdd each (native for double on sm_60 and
// later). NaN logits make every p of the row NaN, whose first maximum is 0.
extern "C" __global__ void softmax_xent_acc(const T* __restrict__ logits,
                                            const int* __restrict__ la,
                                            const int* __restrict__ lb,
                                            const T* __restrict__ lam, T* __restrict__ probs,
                                            T* __restrict__ stats, int N, int K, T eps)
{
    const unsigned int full = 0xffffffffu;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    T loss = T(0), credit = T(0);                       // lane 0's sums over its rows
    for (long long row = (long long)blockIdx.x * nwarps + warp; row < N;
         row += (long long)gridDim.x * nwarps) {
        const T* __restrict__ z = logits + row * K;
        T m = z[0];
        for (int k = lane; k < K; k += 32) m = max(m, z[k]);
        #pragma unroll
        for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(full, m, o));
        T s = T(0);
        for (int k = lane; k < K; k += 32) s += exp(z[k] - m);
        #pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(full, s, o);
        const T ls = log(s);
        T shifted = T(0);                                  // sum_k (z[k] - m), for eps
        if (eps != T(0)) {
            for (int k = lane; k < K; k += 32) shifted += z[k] - m;
            #pragma unroll
            for (int o = 16; o > 0; o >>= 1) shifted += __shfl_xor_sync(full, shifted, o);
        }
        T best = T(0);
        int bi = -1;
        for (int k = lane; k < K; k += 32) {
            const T p = exp((z[k] - m) - ls);
            probs[row * K + k] = p;
            if (bi < 0 || p > best) { best = p; bi = k; }
        }
        #pragma unroll
        for (int o = 16; o > 0; o >>= 1) {                 // first maximum across lanes
            const T ob = __shfl_down_sync(full, best, o);
            const int oi = __shfl_down_sync(full, bi, o);
            if (oi >= 0 && (bi < 0 || ob > best || (ob == best && oi < bi))) {
                best = ob;
                bi = oi;
            }
        }
        if (lane == 0) {
            const T l = lam[row];
            const int a = la[row], b = lb[row];
            const T hard = -(l * ((z[a] - m) - ls) + (T(1) - l) * ((z[b] - m) - ls));
            loss += eps == T(0) ? hard : (T(1) - eps) * hard + eps * (ls - shifted / T(K));
            credit += l * T(bi == a) + (T(1) - l) * T(bi == b);
        }
    }
    __shared__ T sl[32], sc[32];
    if (lane == 0) { sl[warp] = loss; sc[warp] = credit; }
    __syncthreads();
    if (threadIdx.x == 0) {
        T a = T(0), c = T(0);
        for (int w = 0; w < nwarps; ++w) { a += sl[w]; c += sc[w]; }
        atomicAdd(stats, a);
        atomicAdd(stats + 1, c);
    }
}

// Grid-stride over N*K: g[n, k] = (probs[n, k] - t[n, k]) / N with the target
// t = (1 - eps) (lam[n] [k == a[n]] + (1 - lam[n]) [k == b[n]]) + eps / K
// (eps 0: exactly the unsmoothed lam [k == a] + (1 - lam) [k == b]).
extern "C" __global__ void softmax_xent_acc_bwd(const T* __restrict__ probs,
                                                const int* __restrict__ la,
                                                const int* __restrict__ lb,
                                                const T* __restrict__ lam, T* __restrict__ g,
                                                int N, int K, T eps)
{
    const T keep = T(1) - eps, spread = eps / T(K);
    const long long total = (long long)N * K;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const long long n = idx / K;
        const int k = (int)(idx - n * K);
        const T l = lam[n];
        T v = probs[idx] - spread;
        if (k == la[n]) v -= keep * l;
        if (k == lb[n]) v -= keep * (T(1) - l);
        g[idx] = v / T(N);
    }
}
