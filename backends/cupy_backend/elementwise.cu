// Elementwise kernels, one thread per element in grid-stride loops: the
// activations and their gradients, and the optimisers' fused in-place updates.

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

// The same, one element at a time (sizes that are not whole vectors, unaligned views).
extern "C" __global__ void relu_fwd(const T* __restrict__ x, T* __restrict__ y, long long n) {
    GRID_STRIDE(i, n) y[i] = x[i] <= (T)0 ? (T)0 : x[i];
}

extern "C" __global__ void relu_bwd(const T* __restrict__ x, const T* __restrict__ dy,
                                    T* __restrict__ dx, long long n) {
    GRID_STRIDE(i, n) dx[i] = dy[i] * (T)(x[i] > (T)0);
}

extern "C" __global__ void leaky_fwd(const T* __restrict__ x, T* __restrict__ y, long long n,
                                     T slope) {
    GRID_STRIDE(i, n) y[i] = x[i] > (T)0 ? x[i] : x[i] * slope;
}

extern "C" __global__ void leaky_bwd(const T* __restrict__ x, const T* __restrict__ dy,
                                     T* __restrict__ dx, long long n, T slope) {
    GRID_STRIDE(i, n) dx[i] = dy[i] * (x[i] > (T)0 ? (T)1 : slope);
}

// 1 / (1 + exp(-x)) from exp(-|x|), which never overflows.
extern "C" __global__ void sigmoid_fwd(const T* __restrict__ x, T* __restrict__ y, long long n) {
    GRID_STRIDE(i, n) {
        T e = exp(-fabs(x[i]));
        y[i] = x[i] >= (T)0 ? (T)1 / ((T)1 + e) : e / ((T)1 + e);
    }
}

extern "C" __global__ void sigmoid_bwd(const T* __restrict__ y, const T* __restrict__ dy,
                                       T* __restrict__ dx, long long n) {
    GRID_STRIDE(i, n) dx[i] = dy[i] * y[i] * ((T)1 - y[i]);
}

extern "C" __global__ void tanh_fwd(const T* __restrict__ x, T* __restrict__ y, long long n) {
    GRID_STRIDE(i, n) y[i] = tanh(x[i]);
}

extern "C" __global__ void tanh_bwd(const T* __restrict__ y, const T* __restrict__ dy,
                                    T* __restrict__ dx, long long n) {
    GRID_STRIDE(i, n) dx[i] = dy[i] * ((T)1 - y[i] * y[i]);
}

// SGD with momentum, in place: velocity = momentum velocity - lr grad - (lr wd) param;
// param += velocity.
extern "C" __global__ void sgd_update(T* __restrict__ param, const T* __restrict__ grad,
                                      T* __restrict__ velocity, long long n, T lr, T momentum,
                                      T lr_wd) {
    GRID_STRIDE(i, n) {
        T v = momentum * velocity[i] - lr * grad[i] - lr_wd * param[i];
        velocity[i] = v;
        param[i] += v;
    }
}

// Adam / AdamW, in place; one_m_beta1 = 1 - beta1, one_m_beta2 = 1 - beta2, and the
// bias corrections bc1 = 1 - beta1^step, bc2 = 1 - beta2^step come from the host.
extern "C" __global__ void adam_update(T* __restrict__ param, const T* __restrict__ grad,
                                       T* __restrict__ m, T* __restrict__ v, long long n,
                                       T lr, T beta1, T one_m_beta1, T beta2, T one_m_beta2,
                                       T eps, T wd, T bc1, T bc2, T dwd) {
    GRID_STRIDE(i, n) {
        T p0 = param[i];
        T g = grad[i] + wd * p0;
        T mi = beta1 * m[i] + one_m_beta1 * g;
        T vi = beta2 * v[i] + one_m_beta2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        param[i] = p0 - lr * ((mi / bc1) / (sqrt(vi / bc2) + eps) + dwd * p0);
    }
}
