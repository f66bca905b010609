// 2-D max pooling (with its int32 arg-max) and keyed dropout.

// Grid (N*C, up to 65535): block x is the plane (n, c), threads (and block y) stride
// over the outputs q = i*Wo + j of that plane. Window (i, j) covers rows i*sh .. i*sh+kh-1
// and columns j*sw .. j*sw+kw-1; y is its first maximum in row-major order and am its
// position h*W + w in the plane, NaN the largest (common.cuh's window_argmax).
extern "C" __global__ void maxpool2d_fwd(const T* __restrict__ x, T* __restrict__ y,
                                         int* __restrict__ am, int H, int W, int Ho, int Wo,
                                         int kh, int kw, int sh, int sw)
{
    const int plane = blockIdx.x, Q = Ho * Wo;
    const T* __restrict__ src = x + (long long)plane * H * W;
    for (int q = blockIdx.y * blockDim.x + threadIdx.x; q < Q; q += gridDim.y * blockDim.x) {
        const int i = q / Wo, j = q - i * Wo;
        T best;
        const int bi = window_argmax(src, W, i * sh, j * sw, kh, kw, [](T v) { return v; },
                                     best);
        const long long o = (long long)plane * Q + q;
        y[o] = best;
        am[o] = bi;
    }
}

// Same grid as maxpool2d_fwd over dy's plane: dx[plane, am] += dy (dx zeroed first).
// The op is not told the window, so overlapping windows may share a maximum: atomicAdd
// (native for double on sm_60 and later; without overlap no two threads collide).
extern "C" __global__ void maxpool2d_bwd(const T* __restrict__ dy, const int* __restrict__ am,
                                         T* __restrict__ dx, int HW, int Q)
{
    const int plane = blockIdx.x;
    const long long in0 = (long long)plane * HW, out0 = (long long)plane * Q;
    for (int q = blockIdx.y * blockDim.x + threadIdx.x; q < Q; q += gridDim.y * blockDim.x)
        atomicAdd(dx + in0 + am[out0 + q], dy[out0 + q]);
}

// Chris Wellons' lowbias32, the contract's dropout hash (genrecnn.engine.ops.maps).
__device__ __forceinline__ unsigned int lowbias32(unsigned int v)
{
    v ^= v >> 16;
    v *= 0x7feb352du;
    v ^= v >> 15;
    v *= 0x846ca68bu;
    v ^= v >> 16;
    return v;
}

// Grid-stride over the n elements: key = (seed, offset) read as uint32,
// k = lowbias32(seed * 0x9E3779B9 + offset), h = lowbias32(i * 0x9E3779B9 + k) (all mod 2^32),
// and element i is kept iff (h >> 8) / 2^24 >= rate, i.e. iff (h >> 8) >= keep_from where
// the host passes keep_from = ceil(rate * 2^24) (exact: no float compare on the device).
// out = kept ? in * scale : 0 (scale = 1 / (1 - rate)); the same kernel serves the backward.
extern "C" __global__ void dropout_keyed(const T* __restrict__ in, T* __restrict__ out,
                                         long long n, const int* __restrict__ key,
                                         unsigned int keep_from, T scale)
{
    const unsigned int k = lowbias32((unsigned int)key[0] * 0x9e3779b9u + (unsigned int)key[1]);
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        const unsigned int h = lowbias32((unsigned int)i * 0x9e3779b9u + k);
        out[i] = (h >> 8) >= keep_from ? in[i] * scale : T(0);
    }
}
