// Shared-memory tiled GEMM and the convolution / dense kernels built on it.
//
// Compile-time constants (prepended by loader.py): T (float|double), the
// block tile BM x BN with reduction slice BK, the per-thread micro tile
// TM x TN, and KW, the convolution's kernel width (1 for dense).
//
// Every kernel computes C[M, NC] = sum_r A(m, r) B(r, col) for one block
// tile. A and B are never materialised: small loader structs read them
// straight from the layer's arrays (implicit im2col for the convolution),
// so the convolution needs no extra memory and no col2im.
#define NT ((BM / TM) * (BN / TN))
#define RS (BM / TM)   // row step between a thread's micro-tile rows
#define CS (BN / TN)   // column step between a thread's micro-tile columns
#define PAD 4

// Accumulate sum_{r0 <= r < r1} A(m, r) B(r, col) into acc for the tile at
// (m0, n0). A_K / B_K say whether neighbouring threads should walk the
// reduction index (true) or the row / column index (false) when loading, so
// that loads are coalesced for the loader's memory layout.
template <bool A_K, bool B_K, class LA, class LB>
__device__ __forceinline__ void tile_product(const LA& la, const LB& lb, int M, int NC,
                                             int r0, int r1, int m0, int n0,
                                             T (&acc)[TM][TN])
{
    __shared__ T As[BK][BM + PAD];
    __shared__ T Bs[BK][BN + PAD];
    const int tid = threadIdx.x, tx = tid % CS, ty = tid / CS;
    for (int kb = r0; kb < r1; kb += BK) {
        #pragma unroll
        for (int e0 = 0; e0 < BM * BK; e0 += NT) {
            const int e = e0 + tid;
            const int mm = A_K ? e / BK : e % BM, kk = A_K ? e % BK : e / BM;
            const int m = m0 + mm, r = kb + kk;
            As[kk][mm] = (m < M && r < r1) ? la(m, r) : T(0);
        }
        #pragma unroll
        for (int e0 = 0; e0 < BN * BK; e0 += NT) {
            const int e = e0 + tid;
            const int nn = B_K ? e / BK : e % BN, kk = B_K ? e % BK : e / BN;
            const int c = n0 + nn, r = kb + kk;
            Bs[kk][nn] = (c < NC && r < r1) ? lb(r, c) : T(0);
        }
        __syncthreads();
        #pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            T a[TM], b[TN];
            #pragma unroll
            for (int i = 0; i < TM; ++i) a[i] = As[kk][ty + i * RS];
            #pragma unroll
            for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tx + j * CS];
            #pragma unroll
            for (int i = 0; i < TM; ++i)
                #pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
}

__device__ __forceinline__ void zero_acc(T (&acc)[TM][TN])
{
    #pragma unroll
    for (int i = 0; i < TM; ++i)
        #pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = T(0);
}

// out[m * ld + col] = acc (+ bias[m] or bias[col]) for the thread's micro tile.
// bias_mode: 0 none, 1 per row, 2 per column.
__device__ __forceinline__ void store_tile(T* __restrict__ out, int ld, int M, int NC,
                                           int m0, int n0, const T (&acc)[TM][TN],
                                           const T* __restrict__ bias, int bias_mode)
{
    const int tid = threadIdx.x, tx = tid % CS, ty = tid / CS;
    #pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + ty + i * RS;
        if (m >= M) continue;
        #pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int c = n0 + tx + j * CS;
            if (c >= NC) continue;
            T v = acc[i][j];
            if (bias_mode == 1) v += bias[m];
            else if (bias_mode == 2) v += bias[c];
            out[(long long)m * ld + c] = v;
        }
    }
}

// ---- loaders ---------------------------------------------------------------------

struct RowMajor {        // element (i, j) of a row-major matrix with ld columns
    const T* p; int ld;
    __device__ __forceinline__ T operator()(int i, int j) const { return p[(long long)i * ld + j]; }
};
struct Transposed {      // element (i, j) of the transpose of a row-major matrix
    const T* p; int ld;
    __device__ __forceinline__ T operator()(int i, int j) const { return p[(long long)j * ld + i]; }
};
struct Im2col {          // cols(r = c*KW + k, t) = x[c, t + k] for one example
    const T* x; int W;
    __device__ __forceinline__ T operator()(int r, int t) const {
        const int c = r / KW, k = r - c * KW;
        return x[(long long)c * W + t + k];
    }
};
struct ConvDxW {         // A(c, r = f*KW + k) = w[f, c, k]
    const T* w; int C;
    __device__ __forceinline__ T operator()(int c, int r) const {
        const int f = r / KW, k = r - f * KW;
        return w[((long long)f * C + c) * KW + k];
    }
};
struct ConvDxDy {        // B(r = f*KW + k, t) = dy[f, t - k], zero outside [0, Wo)
    const T* dy; int Wo;
    __device__ __forceinline__ T operator()(int r, int t) const {
        const int f = r / KW, k = r - f * KW, s = t - k;
        return (s >= 0 && s < Wo) ? dy[(long long)f * Wo + s] : T(0);
    }
};
struct ColsT {           // B(r = t, col = c*KW + k) = x[c, t + k]
    const T* x; int W;
    __device__ __forceinline__ T operator()(int t, int col) const {
        const int c = col / KW, k = col - c * KW;
        return x[(long long)c * W + t + k];
    }
};

// ---- convolution -------------------------------------------------------------------
// conv_taps_*: a convolution of KW taps along each row as a tiled GEMM (implicit im2col).
// conv1d runs them on x itself; conv2d on its column matrices with KW = 1.
// grid (ceil(Wo/BN), ceil(F/BM), N): y[n] = w[F, C*KW] @ cols(x[n]) + b
extern "C" __global__ void __launch_bounds__(NT)
conv_taps_fwd(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
              T* __restrict__ y, int C, int W, int F)
{
    const int n = blockIdx.z, Wo = W - KW + 1, R = C * KW;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    T acc[TM][TN];
    zero_acc(acc);
    tile_product<true, false>(RowMajor{w, R}, Im2col{x + (long long)n * C * W, W},
                              F, Wo, 0, R, m0, n0, acc);
    store_tile(y + (long long)n * F * Wo, Wo, F, Wo, m0, n0, acc, b, 1);
}

// grid (ceil(W/BN), ceil(C/BM), N): dx[n, c, t] = sum_{f,k} w[f, c, k] dy[n, f, t - k]
// (the "full" correlation as one implicit GEMM: no col2im, no atomics)
extern "C" __global__ void __launch_bounds__(NT)
conv_taps_dx(const T* __restrict__ dy, const T* __restrict__ w, T* __restrict__ dx,
             int C, int W, int F)
{
    const int n = blockIdx.z, Wo = W - KW + 1;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    T acc[TM][TN];
    zero_acc(acc);
    tile_product<true, false>(ConvDxW{w, C}, ConvDxDy{dy + (long long)n * F * Wo, Wo},
                              C, W, 0, F * KW, m0, n0, acc);
    store_tile(dx + (long long)n * C * W, W, C, W, m0, n0, acc, nullptr, 0);
}

// grid (ceil(C*KW/BN), ceil(F/BM), S): split-K weight gradient. Split z takes
// examples [z/TS * nper, +nper) and time steps [z%TS * tchunk, +tchunk);
// part[z, f, c*KW + k] = sum over them of dy[n, f, t] x[n, c, t + k].
// With S == 1, part is dw itself; otherwise sum_splits adds the S slices.
extern "C" __global__ void __launch_bounds__(NT)
conv_taps_dw(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ part,
             int N, int C, int W, int F, int nper, int tchunk, int TS)
{
    const int Wo = W - KW + 1, CK = C * KW, z = blockIdx.z;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int n_lo = (z / TS) * nper, n_hi = min(N, n_lo + nper);
    const int t_lo = (z % TS) * tchunk, t_hi = min(Wo, t_lo + tchunk);
    T acc[TM][TN];
    zero_acc(acc);
    for (int n = n_lo; n < n_hi; ++n)
        tile_product<true, true>(RowMajor{dy + (long long)n * F * Wo, Wo},
                                 ColsT{x + (long long)n * C * W, W},
                                 F, CK, t_lo, t_hi, m0, n0, acc);
    store_tile(part + (long long)z * F * CK, CK, F, CK, m0, n0, acc, nullptr, 0);
}

// ---- dense ---------------------------------------------------------------------------
// Split-K when a batch-sized output has too few tiles to fill the GPU: split z
// sums the reduction slice [z*chunk, (z+1)*chunk) into out + z*M*NC, and
// sum_splits adds the slices (and the bias). Unsplit (gridDim.z == 1), out is
// the result and bias (may be null) is added here.

// grid (ceil(O/BN), ceil(N/BM), S): y = x[N, I] @ w[I, O] + b
extern "C" __global__ void __launch_bounds__(NT)
dense_fwd(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
          T* __restrict__ out, int N, int I, int O, int chunk)
{
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN, z = blockIdx.z;
    const int r0 = z * chunk, r1 = min(I, r0 + chunk);
    T acc[TM][TN];
    zero_acc(acc);
    tile_product<true, false>(RowMajor{x, I}, RowMajor{w, O}, N, O, r0, r1, m0, n0, acc);
    store_tile(out + (long long)z * N * O, O, N, O, m0, n0, acc, b, b ? 2 : 0);
}

// grid (ceil(I/BN), ceil(N/BM), S): dx = dy[N, O] @ w[I, O]^T
extern "C" __global__ void __launch_bounds__(NT)
dense_dx(const T* __restrict__ dy, const T* __restrict__ w, T* __restrict__ out,
         int N, int I, int O, int chunk)
{
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN, z = blockIdx.z;
    const int r0 = z * chunk, r1 = min(O, r0 + chunk);
    T acc[TM][TN];
    zero_acc(acc);
    tile_product<true, true>(RowMajor{dy, O}, Transposed{w, O}, N, I, r0, r1, m0, n0, acc);
    store_tile(out + (long long)z * N * I, I, N, I, m0, n0, acc, nullptr, 0);
}

// grid (ceil(O/BN), ceil(I/BM), S): dw = x[N, I]^T @ dy[N, O]
extern "C" __global__ void __launch_bounds__(NT)
dense_dw(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ out,
         int N, int I, int O, int chunk)
{
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN, z = blockIdx.z;
    const int r0 = z * chunk, r1 = min(N, r0 + chunk);
    T acc[TM][TN];
    zero_acc(acc);
    tile_product<false, false>(Transposed{x, I}, RowMajor{dy, O}, I, O, r0, r1, m0, n0, acc);
    store_tile(out + (long long)z * I * O, O, I, O, m0, n0, acc, nullptr, 0);
}
