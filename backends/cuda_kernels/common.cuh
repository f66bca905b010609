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

// Slot tables: a kernel that takes up to 32 arrays by value (no device-side pointer table,
// so a captured graph holds the launch as it is) declares R32(DECL_X) for each list of
// them and picks its block row's array by a switch on blockIdx.y.
#define R32(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
#define DECL_N(i) long long n##i,
