// The collective op's share of device work (contract: genrecnn.engine.ops.collective):
// each gradient scaled by this rank's weight into its place in the one fused buffer that
// a single cross-rank sum reads, and the sums copied back, up to 32 gradients a launch
// (one block row each); without a communicator, each gradient scaled in place
// (src == dst, so no __restrict__ there).

extern "C" __global__ void scale_into(const T* src, T* dst, T weight, long long n) {
    GRID_STRIDE(i, n) dst[i] = weight * src[i];
}

#define DECL_G(i) const T* __restrict__ g##i,
#define DECL_O(i) long long o##i,
#define PICK_GRAD(i) case i: G_ = g##i; N_ = n##i; O_ = o##i; break;
#define DECL_D(i) T* __restrict__ d##i,
#define PICK_DEST(i) case i: D_ = d##i; N_ = n##i; O_ = o##i; break;

// Gradient g_k (n_k values) times weight into fused[o_k : o_k + n_k].
extern "C" __global__ void scale_many_into(R32(DECL_G) R32(DECL_N) R32(DECL_O)
                                           T* __restrict__ fused, T weight)
{
    const T* G_ = 0; long long N_ = 0, O_ = 0;
    switch (blockIdx.y) { R32(PICK_GRAD) default: return; }
    GRID_STRIDE(i, N_) fused[O_ + i] = weight * G_[i];
}

// fused[o_k : o_k + n_k] back into gradient d_k.
extern "C" __global__ void copy_many_from(R32(DECL_D) R32(DECL_N) R32(DECL_O)
                                          const T* __restrict__ fused)
{
    T* D_ = 0; long long N_ = 0, O_ = 0;
    switch (blockIdx.y) { R32(PICK_DEST) default: return; }
    GRID_STRIDE(i, N_) D_[i] = fused[O_ + i];
}
