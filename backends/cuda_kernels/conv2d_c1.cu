// Direct 2-D convolution of a ONE-channel input (the first layer of a spectrogram CNN:
// a big map, few taps, C == 1). There im2col + GEMM would move many times the memory
// the arithmetic needs: these kernels read x in place and keep the KH*KW taps in
// registers (KH and KW are compile-time constants, defined before this file). ROUND (13
// for tf32, 16 for bf16, 0 or undefined for none) rounds x, w and dy before each product,
// as the contract's low precisions do (common.cuh's round_bits); the bias gradient sums
// dy unrounded.
#define KK (KH * KW)
#if defined(ROUND) && ROUND
#define OPERAND(v) round_bits(v, ROUND)
#else
#define OPERAND(v) (v)
#endif

// Grid (N*FG, up to 65535): block x is (n, filter group fg) = (x / FG, x % FG), the
// group holding filters [fg*fper, min(F, fg*fper + fper)); threads (and block y) stride
// over p = i*Wo + j. Each thread loads its KK taps once and writes one output per filter:
// y[n, f, i, j] = b[f] + sum_{u, v} w[f, 0, u, v] * x[n, 0, i*sh - ph + u, j*sw - pw + v]
// (x taken as 0 outside the map).
extern "C" __global__ void conv2d_c1_fwd(const T* __restrict__ x, const T* __restrict__ w,
                                         const T* __restrict__ b, T* __restrict__ y,
                                         int H, int W, int sh, int sw, int ph, int pw,
                                         int Wo, int P, int F, int FG, int fper)
{
    const int n = blockIdx.x / FG, fg = blockIdx.x - n * FG;
    const int f0 = fg * fper, f1 = min(F, f0 + fper);
    const T* __restrict__ src = x + (long long)n * H * W;
    for (int p = blockIdx.y * blockDim.x + threadIdx.x; p < P; p += gridDim.y * blockDim.x) {
        const int i = p / Wo, j = p - i * Wo, h0 = i * sh - ph, w0 = j * sw - pw;
        T tap[KK];
        #pragma unroll
        for (int u = 0; u < KH; ++u) {
            #pragma unroll
            for (int v = 0; v < KW; ++v) {
                const int h = h0 + u, ww = w0 + v;
                tap[u * KW + v] = (h >= 0 && h < H && ww >= 0 && ww < W)
                                  ? OPERAND(src[(long long)h * W + ww]) : T(0);
            }
        }
        for (int f = f0; f < f1; ++f) {
            const T* __restrict__ wf = w + (long long)f * KK;
            T acc = b[f];
            #pragma unroll
            for (int r = 0; r < KK; ++r) acc += OPERAND(wf[r]) * tap[r];
            y[((long long)n * F + f) * P + p] = acc;
        }
    }
}

// Filters a thread of conv2d_c1_dw_part serves from one load of its taps: fewer for
// bigger kernels, so the C1_FPB * (KK + 1) accumulators stay in registers
// (grids.c1_dw_filters mirrors this).
#define C1_FPB (KK <= 9 ? 4 : (KK <= 25 ? 2 : 1))

// Grid (cdiv(F, C1_FPB), G), 256 threads: block (fb, g) takes C1_FPB filters from fb*C1_FPB
// and the flat positions q = n*P + p in [g*chunk, min(N*P, g*chunk + chunk)); it writes
// part[(f*G + g)*(KK + 1) + r]:
//   r = u*KW + v < KK: sum of dy[n, f, i, j] * x[n, 0, i*sh - ph + u, j*sw - pw + v],
//   r = KK:            sum of dy[n, f, i, j] (the bias gradient).
// A thread loads the KK taps of a position once for C1_FPB filters, and follows (n, i, j)
// along its stride without a division. conv2d_c1_dw_sum adds the G partial sums in a
// fixed order (deterministic, no atomics).
extern "C" __global__ void conv2d_c1_dw_part(const T* __restrict__ x, const T* __restrict__ dy,
                                             T* __restrict__ part, int N, int H, int W,
                                             int sh, int sw, int ph, int pw, int Ho, int Wo,
                                             int F, long long chunk)
{
    const int f0 = blockIdx.x * C1_FPB, g = blockIdx.y;
    const long long P = (long long)Ho * Wo, q1 = min((long long)N * P, (g + 1) * chunk);
    T acc[C1_FPB][KK + 1];
    #pragma unroll
    for (int k = 0; k < C1_FPB; ++k) {
        #pragma unroll
        for (int r = 0; r <= KK; ++r) acc[k][r] = T(0);
    }
    long long q = g * chunk + threadIdx.x;
    if (q < q1) {                               // also keeps Wo = 0 out of the divisions
        int n = (int)(q / P);
        const int p = (int)(q - n * P);
        int i = p / Wo, j = p - i * Wo;
        const int step = blockDim.x, di = step / Wo, dj = step - di * Wo;
        for (; q < q1; q += step) {
            const int h0 = i * sh - ph, w0 = j * sw - pw;
            const T* __restrict__ src = x + (long long)n * H * W;
            T tap[KK];
            #pragma unroll
            for (int u = 0; u < KH; ++u) {
                #pragma unroll
                for (int v = 0; v < KW; ++v) {
                    const int h = h0 + u, ww = w0 + v;
                    tap[u * KW + v] = (h >= 0 && h < H && ww >= 0 && ww < W)
                                      ? OPERAND(src[(long long)h * W + ww]) : T(0);
                }
            }
            const long long at = ((long long)n * F + f0) * P + (long long)i * Wo + j;
            #pragma unroll
            for (int k = 0; k < C1_FPB; ++k) {
                const T d = f0 + k < F ? dy[at + k * P] : T(0), dr = OPERAND(d);
                #pragma unroll
                for (int r = 0; r < KK; ++r) acc[k][r] += dr * tap[r];
                acc[k][KK] += d;
            }
            i += di; j += dj;
            if (j >= Wo) { j -= Wo; ++i; }
            while (i >= Ho) { i -= Ho; ++n; }
        }
    }
    // Block sums: each warp reduces its lanes, then one thread per accumulator adds
    // the warps' sums (blockDim.x is a multiple of 32, at most 1024).
    __shared__ T by_warp[C1_FPB * (KK + 1)][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    #pragma unroll
    for (int k = 0; k < C1_FPB; ++k) {
        #pragma unroll
        for (int r = 0; r <= KK; ++r) {
            T s = acc[k][r];
            #pragma unroll
            for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
            if (lane == 0) by_warp[k * (KK + 1) + r][warp] = s;
        }
    }
    __syncthreads();
    for (int kr = threadIdx.x; kr < C1_FPB * (KK + 1); kr += blockDim.x) {
        const int k = kr / (KK + 1), r = kr - k * (KK + 1);
        if (f0 + k >= F) continue;
        T s = T(0);
        for (int w = 0; w < nwarps; ++w) s += by_warp[kr][w];
        part[((long long)(f0 + k) * gridDim.y + g) * (KK + 1) + r] = s;
    }
}

// Grid-stride over F*(KK + 1): dw[f, 0, u, v] = sum_g part[(f*G + g)*(KK + 1) + u*KW + v]
// and db[f] = sum_g part[(f*G + g)*(KK + 1) + KK], g in increasing order.
extern "C" __global__ void conv2d_c1_dw_sum(const T* __restrict__ part, T* __restrict__ dw,
                                            T* __restrict__ db, int F, int G)
{
    const int total = F * (KK + 1);
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += gridDim.x * blockDim.x) {
        const int f = idx / (KK + 1), r = idx - f * (KK + 1);
        const T* __restrict__ src = part + (long long)f * G * (KK + 1) + r;
        T s = T(0);
        for (int g = 0; g < G; ++g) s += src[(long long)g * (KK + 1)];
        if (r < KK) dw[(long long)f * KK + r] = s;
        else db[f] = s;
    }
}
