// 2-D convolution as im2col + GEMM: the column matrix, and the col2im gather that
// folds its gradient back onto the input. The GEMMs are elsewhere (cuBLAS for CuPy,
// gemm.cu for PyCUDA).
//
// Column (r, n, p), with tap r = (c*KH + u)*KW + v and output position p = i*Wo + j,
// lives at cols[r*sr + n*sn + p]: CuPy lays the matrix out [R, N, P] (sr = N*P, sn = P)
// for one GEMM over the whole batch, PyCUDA [N, R, P] (sr = P, sn = R*P) for its
// per-example GEMM tiles. R = C*KH*KW and P = Ho*Wo.

// Grid (N*R, up to 65535): block x is (n, r) = (x / R, x % R), so consecutive blocks
// read the same input plane; threads (and block y) stride over p.
// cols(r, n, p) = x[n, c, i*sh - ph + u, j*sw - pw + v], 0 where that is padding.
extern "C" __global__ void im2col2d(const T* __restrict__ x, T* __restrict__ cols,
                                    int C, int H, int W, int KH, int KW, int sh, int sw,
                                    int ph, int pw, int Wo, int P, long long sr, long long sn)
{
    const int KK = KH * KW, R = C * KK;
    const int row = blockIdx.x, n = row / R, r = row - n * R;
    const int c = r / KK, uv = r - c * KK, u = uv / KW, v = uv - u * KW;
    const T* __restrict__ src = x + ((long long)n * C + c) * H * W;
    T* __restrict__ dst = cols + (long long)r * sr + (long long)n * sn;
    int p = blockIdx.y * blockDim.x + threadIdx.x;
    if (p >= P) return;                         // also keeps Wo = 0 out of the divisions
    const int step = gridDim.y * blockDim.x, di = step / Wo, dj = step - di * Wo;
    int i = p / Wo, j = p - i * Wo;
    #pragma unroll 4
    for (; p < P; p += step) {                  // (i, j) follow p without a division
        const int h = i * sh - ph + u, w = j * sw - pw + v;
        dst[p] = (h >= 0 && h < H && w >= 0 && w < W) ? src[(long long)h * W + w] : T(0);
        i += di; j += dj;
        if (j >= Wo) { j -= Wo; ++i; }
    }
}

// Grid (N*C, up to 65535): block x is the plane (n, c) = (x / C, x % C); threads (and
// block y) stride over q = h*W + w. A gather, so every dx element is written once:
// dx[n, c, h, w] = sum of dcols(r, n, p) over the taps (u, v) and positions (i, j) with
// i*sh - ph + u = h, j*sw - pw + v = w, 0 <= i < Ho, 0 <= j < Wo, 0 <= u < KH, 0 <= v < KW.
// For a given h the taps are u = th - i*sh (th = h + ph): u runs from the first value
// >= max(0, th - (Ho-1)*sh) that is congruent to th mod sh, up to min(KH-1, th), in steps
// of sh, while i = (th - u) / sh counts down by one. Likewise v and j.
extern "C" __global__ void col2im2d(const T* __restrict__ dcols, T* __restrict__ dx,
                                    int C, int H, int W, int KH, int KW, int sh, int sw,
                                    int ph, int pw, int Ho, int Wo, long long sr, long long sn)
{
    const int plane = blockIdx.x, n = plane / C, c = plane - n * C, HW = H * W;
    const T* __restrict__ src = dcols + (long long)n * sn;
    T* __restrict__ dst = dx + (long long)plane * HW;
    int q = blockIdx.y * blockDim.x + threadIdx.x;
    if (q >= HW) return;                        // also keeps W = 0 out of the divisions
    const int step = gridDim.y * blockDim.x, dh = step / W, dw = step - dh * W;
    int h = q / W, w = q - h * W;
    for (; q < HW; q += step) {                 // (h, w) follow q without a division
        const int th = h + ph, tw = w + pw;
        const int u_lo = max(0, th - (Ho - 1) * sh), u_hi = min(KH - 1, th);
        const int v_lo = max(0, tw - (Wo - 1) * sw), v_hi = min(KW - 1, tw);
        T acc = T(0);
        if (u_lo <= u_hi && v_lo <= v_hi) {
            const int u0 = u_lo + (th - u_lo) % sh, v0 = v_lo + (tw - v_lo) % sw;
            for (int u = u0, i = (th - u0) / sh; u <= u_hi; u += sh, --i) {
                const T* __restrict__ tap_row =
                    src + (long long)((c * KH + u) * KW) * sr + (long long)i * Wo;
                for (int v = v0, j = (tw - v0) / sw; v <= v_hi; v += sw, --j)
                    acc += tap_row[(long long)v * sr + j];
            }
        }
        dst[q] = acc;
        h += dh; w += dw;
        if (w >= W) { w -= W; ++h; }
    }
}
