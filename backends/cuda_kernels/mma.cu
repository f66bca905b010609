// Implicit-GEMM products, and the tensor cores for the contract's low precisions
// (genrecnn.engine.ops.precision): every operand element is rounded to TF32 (PREC 1) or
// bfloat16 (PREC 2) on its way into shared memory, and mma.sync sums the products in
// float32 (m16n8k8 TF32, m16n8k16 bf16; sm_80 and later). PREC 0 is exact float32: each
// thread computes the same accumulator elements an mma fragment would hold, with fma on
// the unrounded tiles (no tensor cores; any GPU). T is float.
//
// Compile-time constants (prepended by loader.py): PREC, the block tile BM x BN and its
// warps WM x WN (WM * WN * 32 threads; each warp owns a (BM/WM) x (BN/WN) sub-tile).
//
// As in gemm.cu, a kernel computes C[M, NC] = sum_r A(m, r) B(r, col) for one block tile,
// with A and B read by loader structs straight from the layer's arrays: the convolutions
// are implicit GEMMs (no column matrix in memory, no col2im), and conv1d is the conv2d of
// a one-row map. Results go out through a store struct (bias, batch-first layout, split-K
// slice) in the same pass.
//
// A loader splits an element's address into two halves, each worked out once rather than
// per element: o(i) for the outer index (a row of A, a column of B) and k(r) for the
// reduction index; at(o, k) is then a few adds, the padding test and one load. Where a
// thread's outer index is the same for every slice, its o is a register and the slice's k
// halves a shared table; where it walks the reduction, its k is worked out once a slice
// and the block's o halves are a shared table.

#define NT (WM * WN * 32)
#define BK 32                   // reduction slice staged in shared memory
#define WTM (BM / WM)           // a warp's sub-tile
#define WTN (BN / WN)
#define MI (WTM / 16)           // mma tiles of a warp along m (16 rows each)
#define NI (WTN / 8)            // and along n (8 columns each)
#define SPAD 8                  // row padding: fragment reads (row 8t + g) hit 32 banks

#if PREC == 0
#define KSTEP 8
#define STAGE(v) (v)
#elif PREC == 1
#define KSTEP 8
#define STAGE(v) round_bits(v, 13)
#else
#define KSTEP 16
#define STAGE(v) round_bits(v, 16)
#endif

// Two bf16-rounded floats as one register: lo in the low half, hi in the high half.
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi)
{
    return (__float_as_uint(hi) & 0xFFFF0000u) | (__float_as_uint(lo) >> 16);
}

typedef float Acc[MI][NI][4];

__device__ __forceinline__ void zero_acc(Acc& acc)
{
    #pragma unroll
    for (int i = 0; i < MI; ++i)
        #pragma unroll
        for (int j = 0; j < NI; ++j)
            #pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;
}

// Stage one operand's BK x BT slice (outer indices t0.., reduction indices kb..) into
// S[k][t], rounded as PREC says; 0 outside T x r1. WALK_K: neighbouring threads walk the
// reduction index, so that global loads coalesce; outs then holds the block's o halves
// and ks is unused, else o is the thread's own and ks holds the slice's k halves.
template <bool WALK_K, int BT, class L>
__device__ __forceinline__ void stage(const L& l, float (*S)[BT + SPAD],
                                      const typename L::O* outs, const typename L::O& o,
                                      const typename L::K* ks, int t0, int T, int kb, int r1)
{
    static_assert(NT % BK == 0 && NT % BT == 0, "a thread's walked index must not change");
    static_assert(BK == 32 && BT % 32 == 0 && (BT + SPAD) % 32 == 8, "the skew's banks");
    const int tid = threadIdx.x;
    if (WALK_K) {
        // lane kk stores S[kk][tt], bank 8 kk + tt (mod 32): with every lane at the same
        // tt, 8-way conflicts. Lane kk takes its outer indices u rotated by kk / 4, so the
        // bank is 8 (kk % 4) + kk / 4 + u: 32 lanes, 32 banks. Both loops have a count
        // known at compile time, unrolled by 8: eight loads in flight a thread (at most
        // 128 registers for every tile and precision, no more than with 4).
        const int kk = tid % BK, r = kb + kk, skew = kk / 4;
        const typename L::K k = l.k(r);
        #pragma unroll 8
        for (int it = 0; it < BT * BK / NT; ++it) {
            const int tt = (tid / BK + it * (NT / BK) + skew) % BT;
            S[kk][tt] = (t0 + tt < T && r < r1) ? STAGE(l.at(outs[tt], k)) : 0.f;
        }
    } else {
        const int tt = tid % BT;
        #pragma unroll 8
        for (int it = 0; it < BT * BK / NT; ++it) {
            const int kk = tid / BT + it * (NT / BT);
            S[kk][tt] = (t0 + tt < T && kb + kk < r1) ? STAGE(l.at(o, ks[kk])) : 0.f;
        }
    }
}

// The o halves a block needs once: the table of its BT outer indices (WALK_K), else the
// thread's own.
template <bool WALK_K, int BT, class L>
__device__ __forceinline__ typename L::O outer_halves(const L& l, typename L::O* outs, int t0)
{
    if (WALK_K)
        for (int tt = threadIdx.x; tt < BT; tt += NT) outs[tt] = l.o(t0 + tt);
    return l.o(t0 + threadIdx.x % BT);
}

// Accumulate sum_{r0 <= r < r1} A(m, r) B(r, col) into the warp's part of the tile at
// (m0, n0). A_K / B_K say whether neighbouring threads walk the reduction index (true)
// or the row / column index (false) when loading, so that global loads coalesce.
// Shared tiles are k-major (As[k][m], Bs[k][n]): fragment element (row g, k t) sits in
// bank (8t + g) mod 32, so a warp's fragment loads are free of bank conflicts.
template <bool A_K, bool B_K, class LA, class LB>
__device__ __forceinline__ void mma_product(const LA& la, const LB& lb, int M, int NC,
                                            int r0, int r1, int m0, int n0, Acc& acc)
{
    __shared__ float As[BK][BM + SPAD];
    __shared__ float Bs[BK][BN + SPAD];
    __shared__ typename LA::O Aouts[A_K ? BM : 1];
    __shared__ typename LB::O Bouts[B_K ? BN : 1];
    __shared__ typename LA::K Aks[A_K ? 1 : BK];
    __shared__ typename LB::K Bks[B_K ? 1 : BK];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp / WN) * WTM, wn = (warp % WN) * WTN;
    const int g = lane >> 2, t = lane & 3;
    const typename LA::O ao = outer_halves<A_K, BM>(la, Aouts, m0);
    const typename LB::O bo = outer_halves<B_K, BN>(lb, Bouts, n0);
    for (int kb = r0; kb < r1; kb += BK) {
        if (!A_K || !B_K) {                       // the slice's k halves
            for (int kk = tid; kk < BK; kk += NT) {
                if (!A_K) Aks[kk] = la.k(kb + kk);
                if (!B_K) Bks[kk] = lb.k(kb + kk);
            }
        }
        if (kb == r0 || !A_K || !B_K) __syncthreads();     // the tables, before their use
        stage<A_K, BM>(la, As, Aouts, ao, Aks, m0, M, kb, r1);
        stage<B_K, BN>(lb, Bs, Bouts, bo, Bks, n0, NC, kb, r1);
        __syncthreads();
#if PREC == 0
        // float32 fma: rows g and g+8 of each m tile, columns 2t and 2t+1 of each n tile
        #pragma unroll 8
        for (int k = 0; k < BK; ++k) {
            float a[MI][2], b[NI][2];
            #pragma unroll
            for (int i = 0; i < MI; ++i) {
                a[i][0] = As[k][wm + i * 16 + g];
                a[i][1] = As[k][wm + i * 16 + g + 8];
            }
            #pragma unroll
            for (int j = 0; j < NI; ++j) {
                b[j][0] = Bs[k][wn + j * 8 + 2 * t];
                b[j][1] = Bs[k][wn + j * 8 + 2 * t + 1];
            }
            #pragma unroll
            for (int i = 0; i < MI; ++i)
                #pragma unroll
                for (int j = 0; j < NI; ++j)
                    #pragma unroll
                    for (int e = 0; e < 4; ++e)
                        acc[i][j][e] = fmaf(a[i][e >> 1], b[j][e & 1], acc[i][j][e]);
        }
#else
        #pragma unroll
        for (int k0 = 0; k0 < BK; k0 += KSTEP) {
            unsigned a[MI][4], b[NI][2];
            #pragma unroll
            for (int i = 0; i < MI; ++i) {
                const int row = wm + i * 16 + g;
#if PREC == 1
                a[i][0] = __float_as_uint(As[k0 + t][row]);
                a[i][1] = __float_as_uint(As[k0 + t][row + 8]);
                a[i][2] = __float_as_uint(As[k0 + t + 4][row]);
                a[i][3] = __float_as_uint(As[k0 + t + 4][row + 8]);
#else
                a[i][0] = pack_bf16(As[k0 + 2 * t][row], As[k0 + 2 * t + 1][row]);
                a[i][1] = pack_bf16(As[k0 + 2 * t][row + 8], As[k0 + 2 * t + 1][row + 8]);
                a[i][2] = pack_bf16(As[k0 + 2 * t + 8][row], As[k0 + 2 * t + 9][row]);
                a[i][3] = pack_bf16(As[k0 + 2 * t + 8][row + 8], As[k0 + 2 * t + 9][row + 8]);
#endif
            }
            #pragma unroll
            for (int j = 0; j < NI; ++j) {
                const int col = wn + j * 8 + g;
#if PREC == 1
                b[j][0] = __float_as_uint(Bs[k0 + t][col]);
                b[j][1] = __float_as_uint(Bs[k0 + t + 4][col]);
#else
                b[j][0] = pack_bf16(Bs[k0 + 2 * t][col], Bs[k0 + 2 * t + 1][col]);
                b[j][1] = pack_bf16(Bs[k0 + 2 * t + 8][col], Bs[k0 + 2 * t + 9][col]);
#endif
            }
            #pragma unroll
            for (int i = 0; i < MI; ++i)
                #pragma unroll
                for (int j = 0; j < NI; ++j) {
#if PREC == 1
                    mma_tf32_m16n8k8(acc[i][j], a[i], b[j]);
#else
                    mma_bf16_m16n8k16(acc[i][j], a[i], b[j]);
#endif
                }
        }
#endif
        __syncthreads();
    }
}

// Hand every accumulator of the warp to out(m, col, value): element e of tile (i, j) is
// row g (+8 for e >= 2), column 2t (+1 for odd e), as mma.sync lays D out.
template <class O>
__device__ __forceinline__ void store_acc(const O& out, int M, int NC, int m0, int n0,
                                          const Acc& acc)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = m0 + (warp / WN) * WTM, wn = n0 + (warp % WN) * WTN;
    const int g = lane >> 2, t = lane & 3;
    #pragma unroll
    for (int i = 0; i < MI; ++i)
        #pragma unroll
        for (int j = 0; j < NI; ++j)
            #pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int m = wm + i * 16 + g + (e >> 1) * 8, c = wn + j * 8 + 2 * t + (e & 1);
                if (m < M && c < NC) out(m, c, acc[i][j][e]);
            }
}

// ---- the convolution's geometry -----------------------------------------------------------
// x[N, C, H, W], w[F, C, KH, KW], y[N, F, Ho, Wo]; tap r = (c * KH + u) * KW + v, R = C*KH*KW;
// output position p = i * Wo + j, P = Ho * Wo; y[n, f, i, j] = b[f] +
// sum_r w[f, r] x[n, c, i*sh - ph + u, j*sw - pw + v] (0 off the map).
struct Window {          // output position col = n*P + p: x's offset at its window's corner
    long long base; int h, w;     // (row h, column w, perhaps in the padding)
};
struct Tap {             // tap r = (c, u, v): its offset from a window's corner
    int off, u, v;
};
struct Geo {
    int N, C, H, W, F, KH, KW, sh, sw, ph, pw, Ho, Wo;
    __device__ __forceinline__ int P() const { return Ho * Wo; }
    __device__ __forceinline__ int R() const { return C * KH * KW; }
    __device__ __forceinline__ Window window(int col) const {
        const int n = col / P(), p = col - n * P(), i = p / Wo, j = p - i * Wo;
        const int h = i * sh - ph, w = j * sw - pw;
        return {((long long)n * C * H + h) * W + w, h, w};
    }
    __device__ __forceinline__ Tap tap(int r) const {
        const int KK = KH * KW, c = r / KK, uv = r - c * KK, u = uv / KW, v = uv - u * KW;
        return {(c * H + u) * W + v, u, v};
    }
    // x at tap t of window o (0 where that is padding)
    __device__ __forceinline__ float at(const float* __restrict__ x, const Window& o,
                                        const Tap& t) const {
        return ((unsigned)(o.h + t.u) < (unsigned)H && (unsigned)(o.w + t.v) < (unsigned)W)
            ? x[o.base + t.off] : 0.f;
    }
};

// The kernels take the geometry as these 13 ints, spelled out (launch checks parse them).
#define GEO Geo{N, C, H, W, F, KH, KW, sh, sw, ph, pw, Ho, Wo}

// Each loader: O o(i) for its outer index, K k(r) for the reduction index, at(o, k).
struct Strided {         // element (i, r) = p[i * so + r * sk]: a row-major matrix or its
    const float* p; long long so, sk;           // transpose, either side of the product
    typedef long long O; typedef long long K;
    __device__ __forceinline__ O o(int i) const { return i * so; }
    __device__ __forceinline__ K k(int r) const { return r * sk; }
    __device__ __forceinline__ float at(O o, K k) const { return p[o + k]; }
};
struct Columns {         // B(r, col = n*P + p): the column matrix of the batch, never stored
    const float* x; Geo g;
    typedef Window O; typedef Tap K;
    __device__ __forceinline__ O o(int col) const { return g.window(col); }
    __device__ __forceinline__ K k(int r) const { return g.tap(r); }
    __device__ __forceinline__ float at(const O& o, const K& k) const { return g.at(x, o, k); }
};
struct ColumnsT {        // B(k = n*P + p, r): the column matrix's transpose (outer index r)
    const float* x; Geo g;
    typedef Tap O; typedef Window K;
    __device__ __forceinline__ O o(int r) const { return g.tap(r); }
    __device__ __forceinline__ K k(int col) const { return g.window(col); }
    __device__ __forceinline__ float at(const O& o, const K& k) const { return g.at(x, k, o); }
};
struct FiltersByChannel {  // A(c, r = (f*KH + u)*KW + v) = w[f, c, u, v]
    const float* w; Geo g;
    typedef long long O; typedef long long K;
    __device__ __forceinline__ O o(int c) const { return (long long)c * g.KH * g.KW; }
    __device__ __forceinline__ K k(int r) const {
        const int KK = g.KH * g.KW, f = r / KK;
        return (long long)f * (g.C - 1) * KK + r;        // f*C*KK + (r - f*KK)
    }
    __device__ __forceinline__ float at(O o, K k) const { return w[o + k]; }
};
struct OutputGrad {      // B(r = (f*KH + u)*KW + v, col = n*H*W + h*W + w): the dy that tap
    const float* dy; Geo g;   // (u, v) of filter f carries back to x[n, :, h, w]
    struct O { long long base; int h, w; };      // dy's offset of example n; h + ph, w + pw
    typedef Tap K;                               // off: f's offset in an example's dy
    __device__ __forceinline__ O o(int col) const {
        const int HW = g.H * g.W, n = col / HW, q = col - n * HW, h = q / g.W;
        return {(long long)n * g.F * g.P(), h + g.ph, q - h * g.W + g.pw};
    }
    __device__ __forceinline__ K k(int r) const {
        const int KK = g.KH * g.KW, f = r / KK, uv = r - f * KK, u = uv / g.KW;
        return {f * g.P(), u, uv - u * g.KW};
    }
    __device__ __forceinline__ float at(const O& o, const K& k) const {
        const int th = o.h - k.u, tw = o.w - k.v;
        if (th < 0 || tw < 0) return 0.f;
        const int i = g.sh == 1 ? th : th / g.sh, j = g.sw == 1 ? tw : tw / g.sw;
        if (i * g.sh != th || j * g.sw != tw || i >= g.Ho || j >= g.Wo) return 0.f;
        return dy[o.base + k.off + i * g.Wo + j];
    }
};
struct GradByFilter {    // A(f, k = n*P + p) = dy[n, f, p]
    const float* dy; Geo g;
    typedef long long O; typedef long long K;
    __device__ __forceinline__ O o(int f) const { return (long long)f * g.P(); }
    __device__ __forceinline__ K k(int col) const {
        const int P = g.P(), n = col / P;
        return (long long)n * (g.F - 1) * P + col;       // n*F*P + (col - n*P)
    }
    __device__ __forceinline__ float at(O o, K k) const { return dy[o + k]; }
};

struct BatchFirst {      // out(m, col = n*S + s) -> a[n, m, s] (+ bias[m]); M rows a slab
    float* a; const float* bias; int M, S;
    __device__ __forceinline__ void operator()(int m, int col, float v) const {
        const int n = col / S;
        a[((long long)n * M + m) * S + (col - n * S)] = bias ? v + bias[m] : v;
    }
};
struct Matrix {          // out(m, col) -> a[m * ld + col] (+ bias[col])
    float* a; const float* bias; int ld;
    __device__ __forceinline__ void operator()(int m, int col, float v) const {
        a[(long long)m * ld + col] = bias ? v + bias[col] : v;
    }
};

// A split-K product into a row-major M x NC matrix: split z (blockIdx.z) sums the reduction
// slice [z*chunk, (z+1)*chunk) of 0 <= r < K into out + z*M*NC. Unsplit (one slice), out
// is the result and the bias (may be null) is added here; after a split, splits.cu's
// sum_splits adds the slices and the bias.
template <bool A_K, bool B_K, class LA, class LB>
__device__ __forceinline__ void split_product(const LA& la, const LB& lb, float* __restrict__ out,
                                              const float* __restrict__ bias, int M, int NC,
                                              int K, int chunk)
{
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN, z = blockIdx.z;
    const int r0 = z * chunk, r1 = min(K, r0 + chunk);
    Acc acc;
    zero_acc(acc);
    mma_product<A_K, B_K>(la, lb, M, NC, r0, r1, m0, n0, acc);
    store_acc(Matrix{out + (long long)z * M * NC, bias, NC}, M, NC, m0, n0, acc);
}

// ---- convolution ------------------------------------------------------------------------
// grid (ceil(N*P / BN), ceil(F / BM)): y = w[F, R] @ columns + b, written batch-first
extern "C" __global__ void __launch_bounds__(NT)
mma_conv2d_fwd(const float* __restrict__ x, const float* __restrict__ w,
               const float* __restrict__ b, float* __restrict__ y, int N, int C, int H, int W,
               int F, int KH, int KW, int sh, int sw, int ph, int pw, int Ho, int Wo)
{
    const Geo g = GEO;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN, NC = N * g.P();
    Acc acc;
    zero_acc(acc);
    mma_product<true, false>(Strided{w, g.R(), 1}, Columns{x, g}, F, NC, 0, g.R(), m0, n0,
                             acc);
    store_acc(BatchFirst{y, b, F, g.P()}, F, NC, m0, n0, acc);
}

// grid (ceil(N*H*W / BN), ceil(C / BM)): dx[n, c, h, w] = sum over filters and taps of
// w[f, c, u, v] dy[n, f, i, j] with i*sh - ph + u = h, j*sw - pw + v = w
extern "C" __global__ void __launch_bounds__(NT)
mma_conv2d_dx(const float* __restrict__ dy, const float* __restrict__ w,
              float* __restrict__ dx, int N, int C, int H, int W, int F, int KH, int KW,
              int sh, int sw, int ph, int pw, int Ho, int Wo)
{
    const Geo g = GEO;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN, NC = N * H * W;
    Acc acc;
    zero_acc(acc);
    mma_product<true, false>(FiltersByChannel{w, g}, OutputGrad{dy, g}, C, NC, 0,
                             F * KH * KW, m0, n0, acc);
    store_acc(BatchFirst{dx, nullptr, C, H * W}, C, NC, m0, n0, acc);
}

// grid (ceil(R / BN), ceil(F / BM), S): split-K weight gradient; split z sums the
// positions k = n*P + p in [z*chunk, (z+1)*chunk) into part[z, f, r] (dw itself when S == 1)
extern "C" __global__ void __launch_bounds__(NT)
mma_conv2d_dw(const float* __restrict__ x, const float* __restrict__ dy,
              float* __restrict__ part, int N, int C, int H, int W, int F, int KH, int KW,
              int sh, int sw, int ph, int pw, int Ho, int Wo, int chunk)
{
    const Geo g = GEO;
    split_product<true, true>(GradByFilter{dy, g}, ColumnsT{x, g}, part, nullptr, F, g.R(),
                              N * g.P(), chunk);
}

// ---- dense (the signatures of gemm.cu's dense kernels) ------------------------------------

// grid (ceil(O / BN), ceil(N / BM), S): y = x[N, I] @ w[I, O] + b
extern "C" __global__ void __launch_bounds__(NT)
mma_dense_fwd(const float* __restrict__ x, const float* __restrict__ w,
              const float* __restrict__ b, float* __restrict__ out, int N, int I, int O, int chunk)
{
    split_product<true, false>(Strided{x, I, 1}, Strided{w, 1, O}, out, b, N, O, I, chunk);
}

// grid (ceil(I / BN), ceil(N / BM), S): dx = dy[N, O] @ w[I, O]^T
extern "C" __global__ void __launch_bounds__(NT)
mma_dense_dx(const float* __restrict__ dy, const float* __restrict__ w,
             float* __restrict__ out, int N, int I, int O, int chunk)
{
    split_product<true, true>(Strided{dy, O, 1}, Strided{w, O, 1}, out, nullptr, N, I, O,
                              chunk);
}

// grid (ceil(O / BN), ceil(I / BM), S): dw = x[N, I]^T @ dy[N, O]
extern "C" __global__ void __launch_bounds__(NT)
mma_dense_dw(const float* __restrict__ x, const float* __restrict__ dy,
             float* __restrict__ out, int N, int I, int O, int chunk)
{
    split_product<false, false>(Strided{x, 1, I}, Strided{dy, 1, O}, out, nullptr, I, O, N,
                                chunk);
}
