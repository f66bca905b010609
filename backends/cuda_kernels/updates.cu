// The optimisers' in-place updates: one __device__ function per rule (SGD with
// momentum, Adam / AdamW), used by the one-parameter kernels (the contract's sgd_update,
// adam_update, scalars by value) and by the kernels that update up to 32 parameters of
// one dtype in one launch (sgd_update_many / adam_update_many): blockIdx.y picks the
// parameter, blocks along x walk its elements. Pointers and sizes travel by value in
// the launch, so a captured graph keeps them; the scalars live in the device array
// ``hyper``, read when the kernel runs, so each replay sees its step's rate.

// SGD with momentum at one element: v = momentum v - lr g - (lr wd) p; p += v.
__device__ __forceinline__ void sgd_rule(T& p, const T g, T& vel, const T lr,
                                         const T momentum, const T lr_wd)
{
    T v = vel * momentum - lr * g;
    if (lr_wd != T(0)) v -= lr_wd * p;
    vel = v;
    p += v;
}

// Adam / AdamW at one element; omb1 = 1 - beta1, omb2 = 1 - beta2, bc1 = 1 - beta1^step,
// bc2 = 1 - beta2^step; wd adds to the gradient, dwd decays the parameter (AdamW).
__device__ __forceinline__ void adam_rule(T& p, const T grad, T& m, T& v, const T lr,
                                          const T beta1, const T omb1, const T beta2,
                                          const T omb2, const T eps, const T wd, const T bc1,
                                          const T bc2, const T dwd)
{
    const T p0 = p;
    const T g = (wd != T(0)) ? grad + wd * p0 : grad;
    const T mi = beta1 * m + omb1 * g;
    const T vi = beta2 * v + omb2 * (g * g);
    m = mi;
    v = vi;
    p = p0 - lr * ((mi / bc1) / (sqrt(vi / bc2) + eps) + dwd * p0);
}

// One parameter, grid-stride; lr_wd = lr * weight_decay from the host.
extern "C" __global__ void sgd_update(T* __restrict__ p, const T* __restrict__ g,
                                      T* __restrict__ vel, long long n, T lr, T momentum,
                                      T lr_wd)
{
    GRID_STRIDE(i, n) sgd_rule(p[i], g[i], vel[i], lr, momentum, lr_wd);
}

// One parameter, grid-stride; the bias corrections come from the host (in double, as
// NumPy computes them).
extern "C" __global__ void adam_update(T* __restrict__ p, const T* __restrict__ grad,
                                       T* __restrict__ m, T* __restrict__ v, long long n,
                                       T lr, T beta1, T omb1, T beta2, T omb2, T eps, T wd,
                                       T bc1, T bc2, T dwd)
{
    GRID_STRIDE(i, n)
        adam_rule(p[i], grad[i], m[i], v[i], lr, beta1, omb1, beta2, omb2, eps, wd, bc1, bc2,
                  dwd);
}

#define DECL_P(i) T* __restrict__ p##i,
#define DECL_G(i) const T* __restrict__ g##i,
#define DECL_A(i) T* __restrict__ a##i,
#define DECL_B(i) T* __restrict__ b##i,
#define CASE3(i) case i: P_ = p##i; G_ = g##i; A_ = a##i; N_ = n##i; break;
#define CASE4(i) case i: P_ = p##i; G_ = g##i; A_ = a##i; B_ = b##i; N_ = n##i; break;
// the parameter of this block row, chosen by a switch (no per-thread local arrays)
#define PICK3(X, Y, Z, N)                                                    \
    T* P_ = 0; const T* G_ = 0; T* A_ = 0; long long N_ = 0;                 \
    switch (blockIdx.y) { R32(CASE3) default: return; }                      \
    T* X = P_; const T* Y = G_; T* Z = A_; const long long N = N_;
#define PICK4(X, Y, Z, W, N)                                                 \
    T* P_ = 0; const T* G_ = 0; T* A_ = 0; T* B_ = 0; long long N_ = 0;     \
    switch (blockIdx.y) { R32(CASE4) default: return; }                      \
    T* X = P_; const T* Y = G_; T* Z = A_; T* W = B_; const long long N = N_;

// hyper = [lr, momentum, weight_decay]; a = velocities (b unused).
extern "C" __global__ void sgd_many(R32(DECL_P) R32(DECL_G) R32(DECL_A) R32(DECL_B)
                                    R32(DECL_N) const T* __restrict__ hyper)
{
    PICK3(p, g, vel, n)
    const T lr = hyper[0], mom = hyper[1], lr_wd = hyper[0] * hyper[2];
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        sgd_rule(p[i], g[i], vel[i], lr, mom, lr_wd);
}

// Adam / AdamW; hyper = [lr, beta1, beta2, eps, wd (in the gradient), decoupled wd,
// 1 - beta1^step, 1 - beta2^step]; a = first moments, b = second moments.
extern "C" __global__ void adam_many(R32(DECL_P) R32(DECL_G) R32(DECL_A) R32(DECL_B)
                                     R32(DECL_N) const T* __restrict__ hyper)
{
    PICK4(p, g, m, v, n)
    const T lr = hyper[0], beta1 = hyper[1], beta2 = hyper[2], eps = hyper[3];
    const T wd = hyper[4], dwd = hyper[5], bc1 = hyper[6], bc2 = hyper[7];
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        adam_rule(p[i], g[i], m[i], v[i], lr, beta1, T(1) - beta1, beta2, T(1) - beta2, eps,
                  wd, bc1, bc2, dwd);
}
