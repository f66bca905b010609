// The memory-bound parts of CuPy's convolutions around cuBLAS's GEMMs: the column
// matrix of the whole batch (im2col), its gradient back to the input (col2im),
// and the re-orderings between batch-first and the GEMM's [F, N*Wo] layout.

// cols[(c*K + k), n, t] = x[n, c, t + k]: the column matrix of the whole batch,
// laid out [C*K, N*Wo] so that one GEMM W[F, C*K] @ cols covers every example.
// One block copies one Wo-long row; blocks walk (n, c, k) with k fastest, so the
// K blocks reading one x row run together and all but the first read hit L2.
extern "C" __global__ void im2col1d(const T* __restrict__ x, T* __restrict__ cols,
                                  int N, int C, int W, int K, int Wo) {
    int b = blockIdx.x;                                    // b = (n*C + c)*K + k
    int nc = b / K, k = b - nc * K;
    int n = nc / C, c = nc - n * C;
    const T* src = x + (long long)nc * W + k;
    T* dst = cols + ((long long)(c * K + k) * N + n) * Wo;
    for (int t = threadIdx.x; t < Wo; t += blockDim.x) dst[t] = src[t];
}

// dx[n, c, t] = sum_k dcols[(c*K + k), n, t - k] over the taps that reach t
// (a gather: every dx element is written once, no atomics). Rows: N*C; columns: W.
extern "C" __global__ void col2im1d(const T* __restrict__ dcols, T* __restrict__ dx,
                                  int N, int C, int W, int K, int Wo) {
    ROW_COL(W)
    int n = row / C, c = row - n * C;
    T acc = 0;
    int k0 = col - Wo + 1 > 0 ? col - Wo + 1 : 0;
    int k1 = col < K - 1 ? col : K - 1;
    long long tap = (long long)N * Wo;                     // distance between taps k, k + 1
    const T* src = dcols + ((long long)(c * K) * N + n) * Wo + col;
    for (int k = k0; k <= k1; ++k) acc += src[k * tap - k];
    dx[(long long)row * W + col] = acc;
}

// y[n, f, t] = yr[f, n, t] + b[f]: the GEMM's [F, N*Wo] result back to batch-first.
// Rows: N*F (row = n*F + f); columns: Wo.
extern "C" __global__ void unfold_bias(const T* __restrict__ yr, const T* __restrict__ b,
                                       T* __restrict__ y, int N, int F, int Wo) {
    ROW_COL(Wo)
    int n = row / F, f = row - n * F;
    y[(long long)row * Wo + col] = yr[((long long)f * N + n) * Wo + col] + b[f];
}

// dyr[f, n, t] = dy[n, f, t]: batch-first gradient to the GEMM layout.
// Rows: F*N (row = f*N + n); columns: Wo.
extern "C" __global__ void fold(const T* __restrict__ dy, T* __restrict__ dyr,
                                int N, int F, int Wo) {
    ROW_COL(Wo)
    int f = row / N, n = row - f * N;
    dyr[(long long)row * Wo + col] = dy[((long long)n * F + f) * Wo + col];
}
