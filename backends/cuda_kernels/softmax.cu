// Softmax and cross-entropy, one warp per row, max-shifted so that huge
// logits never overflow.

// Row max and sum of exp(z - max) for one row, reduced over the warp
// (every lane gets both).
__device__ __forceinline__ void row_stats(const T* __restrict__ z, int K, int lane,
                                          T& mx, T& sum)
{
    mx = -(T)CUDART_INF;
    for (int k = lane; k < K; k += 32) mx = max(mx, z[k]);
    #pragma unroll
    for (int off = 16; off > 0; off >>= 1) mx = max(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    sum = T(0);
    for (int k = lane; k < K; k += 32) sum += exp(z[k] - mx);
    #pragma unroll
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
}

// probs[n, k] = exp(z - max - log(sum)); with labels, rowloss[n] = log(sum) - (z[label] - max).
extern "C" __global__ void softmax_fwd(const T* __restrict__ logits, const int* __restrict__ labels,
                                       T* __restrict__ probs, T* __restrict__ rowloss,
                                       int N, int K)
{
    const long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (row >= N) return;                           // whole warps leave together
    const T* z = logits + row * K;
    T mx, sum;
    row_stats(z, K, lane, mx, sum);
    const T lse = log(sum);
    T* p = probs + row * K;
    for (int k = lane; k < K; k += 32) p[k] = exp(z[k] - mx - lse);
    if (labels != nullptr && lane == 0) {
        const int l = labels[row];
        rowloss[row] = (l >= 0 && l < K) ? lse - (z[l] - mx) : (T)CUDART_NAN;
    }
}

// g[n, k] = (probs[n, k] - (k == labels[n])) / N
extern "C" __global__ void softmax_xent_bwd(const T* __restrict__ probs,
                                            const int* __restrict__ labels,
                                            T* __restrict__ g, int N, int K)
{
    GRID_STRIDE(idx, (long long)N * K) {
        const long long n = idx / K;
        const int k = (int)(idx - n * K);
        const T v = probs[idx] - ((k == labels[n]) ? T(1) : T(0));
        g[idx] = v / T(N);
    }
}
