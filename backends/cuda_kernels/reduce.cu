// Reductions: the loss summed over a batch (split-K partial sums: splits.cu).

// one block: out[0] = sum_{i < n} a[i]
extern "C" __global__ void sum_all(const T* __restrict__ a, T* __restrict__ out, long long n)
{
    T s = T(0);
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += a[i];
    s = block_sum(s);
    if (threadIdx.x == 0) out[0] = s;
}
