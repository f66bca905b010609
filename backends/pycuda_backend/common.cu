// Shared helpers, prepended to every kernel file by kernels.py after the
// compile-time defines (T is float or double).
#include <math_constants.h>

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

// Sum over the 32 lanes of a warp; lane 0 holds the result.
__device__ __forceinline__ T warp_sum(T v)
{
    #pragma unroll
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

// Sum over a whole block (blockDim.x a multiple of 32, at most 1024); every
// thread must call it; thread 0 holds the result.
__device__ __forceinline__ T block_sum(T v)
{
    __shared__ T partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    const int nwarps = blockDim.x >> 5;
    v = (threadIdx.x < nwarps) ? partial[threadIdx.x] : T(0);
    if (warp == 0) v = warp_sum(v);
    return v;
}
