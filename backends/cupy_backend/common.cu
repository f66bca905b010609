// Shared helpers, prepended to every kernel file by kernels.py after the prelude
// that fixes the dtype: T (float or double), V and VN (T's 16-byte vector and its
// lane count), NEG_INF (T's minus infinity).

// Row kernels run on a 2-D grid: blockIdx.x is the row (up to 2^31 - 1 of them),
// blockIdx.y * blockDim.x + threadIdx.x the column. Index arithmetic stays 32-bit
// (64-bit division is emulated and made im2col 3x slower); only offsets are 64-bit.
#define ROW_COL(ncols) const int row = blockIdx.x; \
    const int col = blockIdx.y * blockDim.x + threadIdx.x; if (col >= (ncols)) return;

// Grid-stride loop over n elements (elementwise kernels).
#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)
