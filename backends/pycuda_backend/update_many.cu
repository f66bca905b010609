// Updating up to 32 parameters of one dtype in one launch (the contract's
// sgd_update_many / adam_update_many): blockIdx.y picks the parameter, blocks
// along x walk its elements. Pointers and sizes travel by value in the launch,
// so a captured graph keeps them; the scalars live in the device array
// ``hyper``, read when the kernel runs, so each replay sees its step's rate.
// Shared by both CUDA backends (no helpers from either common.cu).

#define SLOTS 32
#define R32(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
#define DECL_P(i) T* __restrict__ p##i,
#define DECL_G(i) const T* __restrict__ g##i,
#define DECL_A(i) T* __restrict__ a##i,
#define DECL_B(i) T* __restrict__ b##i,
#define DECL_N(i) long long n##i,
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

// velocity = momentum velocity - lr (grad + wd param); param += velocity;
// hyper = [lr, momentum, weight_decay]; a = velocities (b unused).
extern "C" __global__ void sgd_many(R32(DECL_P) R32(DECL_G) R32(DECL_A) R32(DECL_B)
                                    R32(DECL_N) const T* __restrict__ hyper)
{
    PICK3(p, g, vel, n)
    const T lr = hyper[0], mom = hyper[1], wd = hyper[2];
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const T v = mom * vel[i] - lr * (g[i] + wd * p[i]);
        vel[i] = v;
        p[i] += v;
    }
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
         i += (long long)gridDim.x * blockDim.x) {
        const T p0 = p[i];
        const T gi = g[i] + wd * p0;
        const T mi = beta1 * m[i] + (T(1) - beta1) * gi;
        const T vi = beta2 * v[i] + (T(1) - beta2) * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] = p0 - lr * ((mi / bc1) / (sqrt(vi / bc2) + eps) + dwd * p0);
    }
}
