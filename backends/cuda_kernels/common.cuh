// Shared helpers, included in every kernel file by loader.py after the prelude that
// fixes the dtype and the file's compile-time constants: T (float or double), V and VN
// (T's 16-byte vector and its lane count).

// math_constants.h's infinity and NaN, spelled out because NVRTC (CuPy) has no headers.
#ifndef CUDART_INF
#define CUDART_INF __longlong_as_double(0x7ff0000000000000ULL)
#endif
#ifndef CUDART_NAN
#define CUDART_NAN __longlong_as_double(0xfff8000000000000ULL)
#endif

// Row kernels run on a 2-D grid: blockIdx.x is the row (up to 2^31 - 1 of them),
// blockIdx.y * blockDim.x + threadIdx.x the column. Index arithmetic stays 32-bit
// (64-bit division is emulated and made im2col 3x slower); only offsets are 64-bit.
#define ROW_COL(ncols) const int row = blockIdx.x; \
    const int col = blockIdx.y * blockDim.x + threadIdx.x; if (col >= (ncols)) return;

// Grid-stride loop over n elements (elementwise kernels).
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
