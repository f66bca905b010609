// The collective op's share of device work (contract: genrecnn.engine.ops.collective).

// Without a communicator: each gradient scaled in place (src == dst: no __restrict__).
extern "C" __global__ void scale_into(const T* src, T* dst, T weight, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dst[i] = weight * src[i];
}

#define DECL_X(i) T* x##i,
#define PICK_X(i) case i: X_ = x##i; N_ = n##i; break;
#define BEFORE(i) if (i < (int)blockIdx.y) before += n##i;

// Up to SLOTS gradients (block row y: gradient y) to or from their places in the fused
// buffer, one after the other from ``fused``: into it scaled by ``weight`` (into_fused
// != 0), or back out of it once the ranks have summed it.
extern "C" __global__ void fused_copy_many(R32(DECL_X) R32(DECL_N) T* fused, T weight,
                                           int into_fused)
{
    T* X_ = 0; long long N_ = 0;
    switch (blockIdx.y) { R32(PICK_X) default: return; }
    long long before = 0;
    R32(BEFORE)
    T* x = X_;
    T* f = fused + before;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < N_;
         i += (long long)gridDim.x * blockDim.x) {
        if (into_fused) f[i] = weight * x[i];
        else x[i] = f[i];
    }
}
