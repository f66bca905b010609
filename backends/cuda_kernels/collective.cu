// The collective op's share of device work (contract: genrecnn.engine.ops.collective):
// each gradient scaled by this rank's weight into its place in the one fused buffer that
// a single cross-rank sum reads; without a communicator, each gradient scaled in place
// (src == dst, so no __restrict__ here).

extern "C" __global__ void scale_into(const T* src, T* dst, T weight, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dst[i] = weight * src[i];
}
