// Elementwise kernels: activations (ACT chosen at compile time), ReLU on 16-byte
// vectors, and a strided copy for adopting non-contiguous foreign device arrays.
// ACT: 0 relu, 1 leaky_relu, 2 sigmoid, 3 tanh. ReLU lets NaN through, as NumPy's
// maximum does (x <= 0 is false for NaN, and 0 * NaN is NaN in the gradient).

extern "C" __global__ void act_fwd(const T* __restrict__ x, T* __restrict__ y, long long n,
                                   T slope)
{
    GRID_STRIDE(i, n) {
        const T v = x[i];
#if ACT == 0
        y[i] = v <= T(0) ? T(0) : v;
#elif ACT == 1
        y[i] = v > T(0) ? v : v * slope;
#elif ACT == 2
        const T e = exp(-fabs(v));                  // never overflows
        y[i] = v >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
#else
        y[i] = tanh(v);
#endif
    }
}

extern "C" __global__ void act_bwd(const T* __restrict__ x, const T* __restrict__ y,
                                   const T* __restrict__ dy, T* __restrict__ dx, long long n,
                                   T slope)
{
    GRID_STRIDE(i, n) {
#if ACT == 0
        dx[i] = dy[i] * T(x[i] > T(0));
#elif ACT == 1
        dx[i] = dy[i] * (x[i] > T(0) ? T(1) : slope);
#elif ACT == 2
        dx[i] = dy[i] * y[i] * (T(1) - y[i]);
#else
        dx[i] = dy[i] * (T(1) - y[i] * y[i]);
#endif
    }
}

// ReLU forward and backward on 16-byte vectors (float4 / double2): ReLU is the
// network's activation, and vector loads make it run at memory speed. n counts vectors.
extern "C" __global__ void relu_fwd_vec(const V* __restrict__ x, V* __restrict__ y, long long n) {
    GRID_STRIDE(i, n) {
        V v = x[i];
        T* p = reinterpret_cast<T*>(&v);
        #pragma unroll
        for (int j = 0; j < VN; ++j) p[j] = p[j] <= (T)0 ? (T)0 : p[j];
        y[i] = v;
    }
}

extern "C" __global__ void relu_bwd_vec(const V* __restrict__ x, const V* __restrict__ dy,
                                        V* __restrict__ dx, long long n) {
    GRID_STRIDE(i, n) {
        V a = x[i], g = dy[i];
        T* p = reinterpret_cast<T*>(&a);
        T* q = reinterpret_cast<T*>(&g);
        #pragma unroll
        for (int j = 0; j < VN; ++j) q[j] = q[j] * (T)(p[j] > (T)0);
        dx[i] = g;
    }
}

// dst (C-contiguous, n elements of itemsize bytes) = src viewed with shape
// dims[0:ndim] and byte strides dims[ndim:2*ndim].
extern "C" __global__ void strided_copy(const char* __restrict__ src, char* __restrict__ dst,
                                        long long n, int ndim, int itemsize,
                                        const long long* __restrict__ dims)
{
    GRID_STRIDE(i, n) {
        long long rem = i, off = 0;
        for (int d = ndim - 1; d >= 0; --d) {
            const long long extent = dims[d];
            off += (rem % extent) * dims[ndim + d];
            rem /= extent;
        }
        for (int b = 0; b < itemsize; ++b) dst[i * itemsize + b] = src[off + b];
    }
}
