// Softmax and cross-entropy, one warp per row, max-shifted so that huge logits
// never overflow.

// One warp per row of logits: max-shifted log-sum-exp, probabilities and,
// when labels are given, the row's negative log-likelihood.
extern "C" __global__ void softmax_rows(const T* __restrict__ logits,
                                        const int* __restrict__ labels,
                                        T* __restrict__ probs, T* __restrict__ nll,
                                        int N, int K, int with_labels) {
    int warp = (int)(((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    int nwarps = (int)(((long long)gridDim.x * blockDim.x) >> 5);
    int lane = threadIdx.x & 31;
    for (; warp < N; warp += nwarps) {
        const T* z = logits + (long long)warp * K;
        T m = NEG_INF;
        for (int k = lane; k < K; k += 32) m = max(m, z[k]);
        for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
        T s = 0;
        for (int k = lane; k < K; k += 32) s += exp(z[k] - m);
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        T ls = log(s);                     // shift first: z - m is exact, z - (m + ls) is not
        for (int k = lane; k < K; k += 32) probs[(long long)warp * K + k] = exp((z[k] - m) - ls);
        if (with_labels && lane == 0) nll[warp] = ls - (z[labels[warp]] - m);
    }
}

// d loss / d logits = (probs - onehot(labels)) / N. Rows: N; columns: K.
extern "C" __global__ void softmax_ce_bwd(const T* __restrict__ probs,
                                          const int* __restrict__ labels,
                                          T* __restrict__ g, int K, T inv_n) {
    ROW_COL(K)
    long long i = (long long)row * K + col;
    g[i] = (probs[i] - (labels[row] == col ? (T)1 : (T)0)) * inv_n;
}
