// Direct 1-D convolution for layers with few filters (the dissertation's 32).
//
// A GEMM tile of 32 output rows re-reads its column matrix for little work;
// here a block keeps a window of x in shared memory and reuses it across all
// its filters and taps, so x is read from memory once and no column matrix is
// ever written. Compile-time constants: T (float|double) and KW, the width.
//
// forward  y[n, f, t]  = b[f] + sum_{c,k} w[f, c, k] x[n, c, t + k]
// weights  dw[f, c, k] = sum_{n,t} dy[n, f, t] x[n, c, t + k];  db[f] = sum_{n,t} dy[n, f, t]

// grids.py launches these kernels from the same tile sizes (CONV1D_*): change both.
#define FWD_F 32          // filters per block: 4 warps of 8 filters each
#define FWD_T 256         // positions per block: lane l owns 4l..4l+3 and 128+4l..+3
#define FWD_C 8           // input channels staged in shared memory at a time
#define FWD_NV ((KW + 6) / 4)           // 4-vectors in a lane's window of 4 + KW - 1 values
#define FWD_XP (252 + 4 * FWD_NV)       // row pitch: the last lane's window still fits
#define FWD_NX ((FWD_XP + 127) / 128)           // x values a thread stages per channel row (at most)
#define FWD_NW (FWD_C * KW * FWD_F / 128)        // weights each thread stages
#define FWD_WP (FWD_F + 4)              // weight row pitch: staging a tap's 32 filters is 4-way, not 32-way, bank-conflicted

#define DW_F 32           // filters per block: 8 groups of 4
#ifndef DW_C
#define DW_C 64           // channels per block, DW_C / 2 groups of 2 (the host picks 32 for C <= 32)
#endif
#define DW_THREADS (4 * DW_C)
#define DW_T (sizeof(T) == 4 ? 64 : 32)     // time steps staged at a time
#define DW_XW (DW_T + KW - 1)               // x values a channel row needs
#define DW_XP (DW_XW | 1)                   // odd row pitch: the 4 channel rows a warp reads hit distinct banks
#define DW_FP (DW_F + 4)                    // dy row pitch (as FWD_WP): 16-byte rows, 4-way staging
#define DW_NDY (DW_F * DW_T / DW_THREADS)   // dy values each thread stages
#define DW_NX ((DW_C * DW_XW + DW_THREADS - 1) / DW_THREADS)   // x values each thread stages (at most)

__device__ __forceinline__ void load4(const float* p, float* v)
{
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
}

__device__ __forceinline__ void load4(const double* p, double* v)
{
    const double2 a = *reinterpret_cast<const double2*>(p);
    const double2 b = *reinterpret_cast<const double2*>(p + 2);
    v[0] = a.x; v[1] = a.y; v[2] = b.x; v[3] = b.y;
}

// grid (ceil(Wo / FWD_T), ceil(F / FWD_F), N), 128 threads. Warp g computes filters
// f0 + 8g .. +7 at 8 positions a lane: two runs of 4, whose windows of x (4 + KW - 1
// values, read as 4-vectors, conflict-free) serve every tap from registers, while
// the weights of a tap are two broadcast 4-vectors. A stage issues all its loads
// before its first shared-memory store, so they wait on memory once, not in turn.
extern "C" __global__ void __launch_bounds__(128)
conv1d_direct_fwd(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                  T* __restrict__ y, int C, int W, int F)
{
    __shared__ __align__(16) T xs[FWD_C][FWD_XP];
    __shared__ __align__(16) T ws[FWD_C * KW][FWD_WP];
    const int n = blockIdx.z, Wo = W - KW + 1;
    const int t0 = blockIdx.x * FWD_T, f0 = blockIdx.y * FWD_F;
    const int lane = threadIdx.x & 31, g = threadIdx.x >> 5;
    const T* xn = x + (long long)n * C * W;
    T acc[8][8];                                  // [filter][run * 4 + position]
    #pragma unroll
    for (int i = 0; i < 8; ++i)
        #pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = T(0);

    for (int c0 = 0; c0 < C; c0 += FWD_C) {
        T px[FWD_C][FWD_NX], pw[FWD_NW];
        #pragma unroll
        for (int cc = 0; cc < FWD_C; ++cc)
            #pragma unroll
            for (int r = 0; r < FWD_NX; ++r) {
                const int tt = threadIdx.x + 128 * r;
                px[cc][r] = (c0 + cc < C && tt < FWD_XP && t0 + tt < W)
                    ? xn[(long long)(c0 + cc) * W + t0 + tt] : T(0);
            }
        #pragma unroll
        for (int r = 0; r < FWD_NW; ++r) {
            const int e = threadIdx.x + 128 * r, f = e / (FWD_C * KW), q = e - f * (FWD_C * KW);
            pw[r] = (f0 + f < F && c0 + q / KW < C)             // q = cc*KW + k
                ? w[((long long)(f0 + f) * C + c0) * KW + q] : T(0);
        }
        #pragma unroll
        for (int cc = 0; cc < FWD_C; ++cc)
            #pragma unroll
            for (int r = 0; r < FWD_NX; ++r) {
                const int tt = threadIdx.x + 128 * r;
                if (tt < FWD_XP) xs[cc][tt] = px[cc][r];
            }
        #pragma unroll
        for (int r = 0; r < FWD_NW; ++r) {
            const int e = threadIdx.x + 128 * r, f = e / (FWD_C * KW);
            ws[e - f * (FWD_C * KW)][f] = pw[r];
        }
        __syncthreads();
        #pragma unroll 2
        for (int cc = 0; cc < FWD_C; ++cc) {
            T win[2][4 * FWD_NV];
            #pragma unroll
            for (int h = 0; h < 2; ++h)
                #pragma unroll
                for (int q = 0; q < FWD_NV; ++q) load4(&xs[cc][128 * h + 4 * lane + 4 * q], &win[h][4 * q]);
            #pragma unroll
            for (int k = 0; k < KW; ++k) {
                T wv[8];
                load4(&ws[cc * KW + k][8 * g], wv);
                load4(&ws[cc * KW + k][8 * g + 4], wv + 4);
                #pragma unroll
                for (int i = 0; i < 8; ++i)
                    #pragma unroll
                    for (int h = 0; h < 2; ++h)
                        #pragma unroll
                        for (int j = 0; j < 4; ++j)
                            acc[i][4 * h + j] = fma(wv[i], win[h][j + k], acc[i][4 * h + j]);
            }
        }
        __syncthreads();
    }
    #pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int f = f0 + 8 * g + i;
        if (f >= F) continue;
        T* yrow = y + ((long long)n * F + f) * Wo;
        #pragma unroll
        for (int h = 0; h < 2; ++h)
            #pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int t = t0 + 128 * h + 4 * lane + j;
                if (t < Wo) yrow[t] = acc[i][4 * h + j] + b[f];
            }
    }
}

// grid (ceil(C / DW_C), ceil(F / DW_F), S), DW_THREADS threads: split z sums over the
// (example, DW_T-step) units [z*per, (z+1)*per) into part[z] = [dw (F*C*KW) | db (F)];
// with S == 1 part is the result, otherwise sum_splits adds the S slices. Thread
// (fg = tid % 8, cg = tid / 8) owns filters 4fg..+3 x channels 2cg..+1 x every tap;
// walking t it slides a KW-wide register window along each channel row, so every
// step reads one 4-vector of dy and one new x per channel for 8*KW multiply-adds.
// The next unit's values are fetched into registers while this one is computed;
// db is summed by the first warp of the blocks of the first channel tile.
extern "C" __global__ void __launch_bounds__(DW_THREADS)
conv1d_direct_dw(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ part,
                 int N, int C, int W, int F, int per)
{
    __shared__ __align__(16) T dys[DW_T][DW_FP];
    __shared__ T xs[DW_C][DW_XP];
    const int Wo = W - KW + 1, tpn = (Wo + DW_T - 1) / DW_T;
    const long long units = (long long)N * tpn;
    const long long u0 = (long long)blockIdx.z * per;
    const long long u1 = min(units, u0 + per);
    const int c0 = blockIdx.x * DW_C, f0 = blockIdx.y * DW_F;
    const int tid = threadIdx.x, fg = tid & 7, cg = tid >> 3;
    const bool sums_db = blockIdx.x == 0 && tid < DW_F;
    T acc[4][2][KW], db = T(0), pdy[DW_NDY], px[DW_NX];
    #pragma unroll
    for (int i = 0; i < 4; ++i)
        #pragma unroll
        for (int h = 0; h < 2; ++h)
            #pragma unroll
            for (int k = 0; k < KW; ++k) acc[i][h][k] = T(0);

    auto fetch = [&](long long u) {
        const int n = (int)(u / tpn), t0 = (int)(u - (long long)n * tpn) * DW_T;
        #pragma unroll
        for (int r = 0; r < DW_NDY; ++r) {
            const int e = tid + DW_THREADS * r, f = e / DW_T, t = e - f * DW_T;
            pdy[r] = (f0 + f < F && t0 + t < Wo)
                ? dy[((long long)n * F + f0 + f) * Wo + t0 + t] : T(0);
        }
        #pragma unroll
        for (int r = 0; r < DW_NX; ++r) {
            const int e = tid + DW_THREADS * r, c = e / DW_XW, t = e - c * DW_XW;
            px[r] = (e < DW_C * DW_XW && c0 + c < C && t0 + t < W)
                ? x[((long long)n * C + c0 + c) * W + t0 + t] : T(0);
        }
    };
    if (u0 < u1) fetch(u0);
    for (long long u = u0; u < u1; ++u) {
        #pragma unroll
        for (int r = 0; r < DW_NDY; ++r) {
            const int e = tid + DW_THREADS * r, f = e / DW_T;
            dys[e - f * DW_T][f] = pdy[r];
        }
        #pragma unroll
        for (int r = 0; r < DW_NX; ++r) {
            const int e = tid + DW_THREADS * r, c = e / DW_XW;
            if (e < DW_C * DW_XW) xs[c][e - c * DW_XW] = px[r];
        }
        __syncthreads();
        if (u + 1 < u1) fetch(u + 1);
        if (sums_db)
            for (int t = 0; t < DW_T; ++t) db += dys[t][tid];
        T win[2][KW];
        #pragma unroll
        for (int h = 0; h < 2; ++h)
            #pragma unroll
            for (int k = 0; k < KW - 1; ++k) win[h][k] = xs[2 * cg + h][k];
        #pragma unroll 16
        for (int t = 0; t < DW_T; ++t) {
            T dv[4];
            load4(&dys[t][4 * fg], dv);
            #pragma unroll
            for (int h = 0; h < 2; ++h) win[h][KW - 1] = xs[2 * cg + h][t + KW - 1];
            #pragma unroll
            for (int i = 0; i < 4; ++i)
                #pragma unroll
                for (int h = 0; h < 2; ++h)
                    #pragma unroll
                    for (int k = 0; k < KW; ++k) acc[i][h][k] = fma(dv[i], win[h][k], acc[i][h][k]);
            #pragma unroll
            for (int h = 0; h < 2; ++h)
                #pragma unroll
                for (int k = 0; k < KW - 1; ++k) win[h][k] = win[h][k + 1];
        }
        __syncthreads();
    }
    T* out = part + (long long)blockIdx.z * ((long long)F * C * KW + F);
    #pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int f = f0 + 4 * fg + i;
        if (f >= F) continue;
        #pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int c = c0 + 2 * cg + h;
            if (c >= C) continue;
            #pragma unroll
            for (int k = 0; k < KW; ++k) out[((long long)f * C + c) * KW + k] = acc[i][h][k];
        }
    }
    if (sums_db && f0 + tid < F) out[(long long)F * C * KW + f0 + tid] = db;
}
