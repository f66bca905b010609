// Elementwise kernels: activations (ACT chosen at compile time), the
// optimisers' in-place updates, and a strided copy for adopting
// non-contiguous foreign device arrays.
// ACT: 0 relu, 1 leaky_relu, 2 sigmoid, 3 tanh.

extern "C" __global__ void act_fwd(const T* __restrict__ x, T* __restrict__ y, long long n,
                                   T slope)
{
    GRID_STRIDE(i, n) {
        const T v = x[i];
#if ACT == 0
        y[i] = v > T(0) ? v : T(0);
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
        dx[i] = x[i] > T(0) ? dy[i] : T(0);
#elif ACT == 1
        dx[i] = dy[i] * (x[i] > T(0) ? T(1) : slope);
#elif ACT == 2
        dx[i] = dy[i] * y[i] * (T(1) - y[i]);
#else
        dx[i] = dy[i] * (T(1) - y[i] * y[i]);
#endif
    }
}

// v = momentum v - lr g - (lr wd) p; p += v
extern "C" __global__ void sgd_update(T* __restrict__ p, const T* __restrict__ g,
                                      T* __restrict__ vel, long long n, T lr, T momentum,
                                      T lr_wd)
{
    GRID_STRIDE(i, n) {
        T v = vel[i] * momentum - lr * g[i];
        if (lr_wd != T(0)) v -= lr_wd * p[i];
        vel[i] = v;
        p[i] += v;
    }
}

// Adam; omb1 = 1 - beta1, omb2 = 1 - beta2, bc1 = 1 - beta1^step and
// bc2 = 1 - beta2^step come from the host (in double, as NumPy does).
extern "C" __global__ void adam_update(T* __restrict__ p, const T* __restrict__ grad,
                                       T* __restrict__ m, T* __restrict__ v, long long n,
                                       T lr, T beta1, T omb1, T beta2, T omb2, T eps, T wd,
                                       T bc1, T bc2, T dwd)
{
    GRID_STRIDE(i, n) {
        const T p0 = p[i];
        const T g = (wd != T(0)) ? grad[i] + wd * p0 : grad[i];
        const T mi = beta1 * m[i] + omb1 * g;
        const T vi = beta2 * v[i] + omb2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        p[i] = p0 - lr * ((mi / bc1) / (sqrt(vi / bc2) + eps) + dwd * p0);
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
