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

#define FULL_MASK 0xffffffffu

// Sums of a and b over the 32 lanes of a warp in a fixed tree; lane 0 ends with both.
__device__ __forceinline__ void warp_sum2(T& a, T& b)
{
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        a += __shfl_down_sync(FULL_MASK, a, o);
        b += __shfl_down_sync(FULL_MASK, b, o);
    }
}

// Sum of a and b over the block (every thread calls it once); thread 0 ends with both.
__device__ __forceinline__ void sum2_block(T& a, T& b)
{
    __shared__ T sa[32], sb[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    warp_sum2(a, b);
    if (lane == 0) { sa[warp] = a; sb[warp] = b; }
    __syncthreads();
    if (warp == 0) {
        a = lane < nwarps ? sa[lane] : T(0);
        b = lane < nwarps ? sb[lane] : T(0);
        warp_sum2(a, b);
    }
}

// Per-channel reductions over x[N, C, S] (S = positions per example and channel: H*W
// for maps, W for sequences, 1 for vectors) run on a grid (C, G), blockDim.x = 256:
// block (c, g) owns channel c of examples [g*rows, min(N, g*rows + rows)). Its threads
// are 2^lts lanes along s (lts <= 8) times 256 >> lts examples at a time, so a small S
// (down to 1) keeps every thread busy and no element needs a division. Each block leaves
// its partial results at [c*G + g]; they are merged in a fixed order (deterministic
// outputs, no atomics).

// The values of channel blockIdx.x held by this block.
struct ChannelSlice {
    int N, C, rows, lts;
    long long S;
    // f(plane, i) for each value: i its offset in x, plane = n*C + c its (example, channel).
    template <class Fn>
    __device__ __forceinline__ void each_in_plane(Fn f) const {
        const int lanes = 1 << lts, n1 = min(N, (int)blockIdx.y * rows + rows);
        for (int n = (int)blockIdx.y * rows + (int)(threadIdx.x >> lts); n < n1;
             n += (int)(blockDim.x >> lts)) {
            const long long plane = (long long)n * C + blockIdx.x, base = plane * S;
            #pragma unroll 4
            for (long long s = threadIdx.x & (lanes - 1); s < S; s += lanes) f(plane, base + s);
        }
    }
    // f(i) for each value's offset i in x.
    template <class Fn>
    __device__ __forceinline__ void each(Fn f) const {
        each_in_plane([&](long long, long long i) { f(i); });
    }
};

// The calling warp's total of channel c's G block partials pa[c*G + g] and pb[c*G + g]
// (lane-strided, then a fixed tree); lane 0 ends with both.
__device__ __forceinline__ void channel_parts_sum(const T* __restrict__ pa,
                                                  const T* __restrict__ pb, int c, int G,
                                                  T& a, T& b)
{
    a = T(0);
    b = T(0);
    for (int g = threadIdx.x & 31; g < G; g += 32) {
        a += pa[(long long)c * G + g];
        b += pb[(long long)c * G + g];
    }
    warp_sum2(a, b);
}

// Batch-norm backward's per-channel sums for the whole block: the calling block's first
// warp adds channel c's G partials of dbeta (pa) and dgamma (pb) and, where ``store``,
// writes dbeta[c] and dgamma[c]; every thread gets dbeta / M and dgamma / M. Every
// thread of the block must call it (it holds a barrier).
__device__ __forceinline__ void bn_grad_sums(const T* __restrict__ pa, const T* __restrict__ pb,
                                             int c, int G, long long M, bool store,
                                             T* __restrict__ dgamma, T* __restrict__ dbeta,
                                             T& mdb, T& mdg)
{
    __shared__ T coef[2];
    if (threadIdx.x < 32) {
        T a, b;
        channel_parts_sum(pa, pb, c, G, a, b);
        if (threadIdx.x == 0) {
            coef[0] = a / T(M);
            coef[1] = b / T(M);
            if (store) { dbeta[c] = a; dgamma[c] = b; }
        }
    }
    __syncthreads();
    mdb = coef[0];
    mdg = coef[1];
}

// Max pooling's window rule: the position h*W + w of the first maximum of key(v) over the
// window of rows h0 .. h0+kh-1 and columns w0 .. w0+kw-1 of a row-major plane of width W,
// a NaN counting as larger than any number (the first NaN wins: a later value never
// replaces a NaN, and a NaN replaces any number); best gets that key.
template <class Key>
__device__ __forceinline__ int window_argmax(const T* __restrict__ src, int W, int h0, int w0,
                                             int kh, int kw, Key key, T& best)
{
    int bi = h0 * W + w0;
    best = key(src[bi]);
    for (int a = 0; a < kh; ++a) {
        const int rowpos = (h0 + a) * W + w0;
        for (int b = 0; b < kw; ++b) {
            const T v = key(src[rowpos + b]);
            if (v > best || (isnan(v) && !isnan(best))) { best = v; bi = rowpos + b; }
        }
    }
    return bi;
}

// Slot tables: a kernel that takes up to 32 arrays by value (no device-side pointer table,
// so a captured graph holds the launch as it is) declares R32(DECL_X) for each list of
// them and picks its block row's array by a switch on blockIdx.y.
#define R32(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
#define DECL_N(i) long long n##i,

// Warp-level tensor-core products (sm_80 and later; mma.cu), fragments as the PTX ISA lays
// them out. The CPU emulator of the tests (tests/cuda_emulator) defines CUDA_EMULATOR and
// supplies its own.
#ifndef CUDA_EMULATOR
// D += A B for one 16 x 8 tile, K = 8: A row-major, B column-major, TF32 operands.
__device__ __forceinline__ void mma_tf32_m16n8k8(float (&d)[4], const unsigned (&a)[4],
                                                 const unsigned (&b)[2])
{
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// D += A B for one 16 x 8 tile, K = 16: bf16 operands, two to a register.
__device__ __forceinline__ void mma_bf16_m16n8k16(float (&d)[4], const unsigned (&a)[4],
                                                  const unsigned (&b)[2])
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

// ---- rounding to the contract's low precisions (mma.cu's operands, conv2d_c1.cu's) ----
// on the float's bits u:
// tf32: u + 0x0FFF + ((u >> 13) & 1), low 13 bits cleared; bf16 likewise with 16 bits:
// round to nearest, ties to even; a carry out of the largest finite value gives inf.
// NaN keeps its sign and gets the quiet bit, so it stays NaN once the low bits go.
__device__ __forceinline__ float round_bits(float x, int drop)
{
    unsigned u = __float_as_uint(x);
    const unsigned low = (1u << drop) - 1u;
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return __uint_as_float((u | 0x00400000u) & ~low);
    u += (low >> 1) + ((u >> drop) & 1u);
    return __uint_as_float(u & ~low);
}
