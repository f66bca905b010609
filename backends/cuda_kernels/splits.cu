// Adding the slices of a split-K reduction.
//
// grid (ceil(L / 32)), block (32, 8): out[i] = sum_{z < S} part[z, i] (+ bias[i % ncols]
// when bias is not null). Eight rows of threads each walk every eighth slice, with
// loads for several slices in flight, and one fixed-order sum joins the rows: the
// result is deterministic, and hundreds of slices no longer cost hundreds of
// dependent memory round trips.
extern "C" __global__ void sum_splits(const T* __restrict__ part, T* __restrict__ out,
                                      int S, long long L, const T* __restrict__ bias, int ncols)
{
    __shared__ T rows[8][33];
    const long long i = (long long)blockIdx.x * 32 + threadIdx.x;
    T s = T(0);
    if (i < L) {
        #pragma unroll 4
        for (int z = threadIdx.y; z < S; z += 8) s += part[(long long)z * L + i];
    }
    rows[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && i < L) {
        T t = rows[0][threadIdx.x];
        #pragma unroll
        for (int r = 1; r < 8; ++r) t += rows[r][threadIdx.x];
        if (bias) t += bias[i % ncols];
        out[i] = t;
    }
}
