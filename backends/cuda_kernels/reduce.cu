// Reductions: bias gradients and the loss (split-K partial sums: splits.cu).

// grid (F), block 256: out[f] = sum_{n < N, q < Q} a[n, f, q]
// (conv db with Q = Wo; dense db with Q = 1)
extern "C" __global__ void sum_nq(const T* __restrict__ a, T* __restrict__ out,
                                  int N, int F, int Q)
{
    const int f = blockIdx.x;
    const long long total = (long long)N * Q;
    T s = T(0);
    for (long long i = threadIdx.x; i < total; i += blockDim.x) {
        const long long n = i / Q, q = i - n * Q;
        s += a[(n * F + f) * Q + q];
    }
    s = block_sum(s);
    if (threadIdx.x == 0) out[f] = s;
}

// one block: out[0] = sum_{i < n} a[i]
extern "C" __global__ void sum_all(const T* __restrict__ a, T* __restrict__ out, long long n)
{
    T s = T(0);
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += a[i];
    s = block_sum(s);
    if (threadIdx.x == 0) out[0] = s;
}
