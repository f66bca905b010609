"""The contract's sequence ops (:mod:`genrecnn.engine.ops.sequence`) whose launches are the
same for both CUDA backends, planned once through the primitives of :mod:`.device`: max
and global pooling (``pool.cu``) and softmax with its cross-entropy (``softmax.cu``).
conv1d, dense and the activations are each backend's own. Pure Python: importing it
needs no CUDA.
"""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.device import BLOCK, Launches
from genrecnn.engine.ops import maxpool1d_out_width


class PoolSoftmaxOps(Launches):
    """maxpool1d, global_pool and softmax for a CUDA backend (listed before ``Backend``)."""

    # -- pooling ---------------------------------------------------------------------------

    def maxpool1d(self, x, size, stride):
        n, c, width = (int(s) for s in x.shape)
        wo = maxpool1d_out_width(width, size, stride)
        y = self._dev_empty((n, c, wo), x.dtype)
        argmax = self._dev_empty((n, c, wo), "int32")
        self._flat_launch("pool.cu", "maxpool_fwd", "PPPqiiii", x.dtype, n * c * wo,
                          (x, y, argmax, n * c, width, wo, int(size), int(stride)))
        return y, argmax

    def maxpool1d_backward(self, dy, argmax, width):
        # The op is not told size and stride, so overlapping windows are always
        # possible: scatter with atomicAdd into a zeroed dx (one memset, one pass).
        n, c, wo = (int(s) for s in dy.shape)
        dx = self.zeros((n, c, int(width)), dy.dtype)
        self._flat_launch("pool.cu", "maxpool_bwd", "PPPqii", dy.dtype, n * c * wo,
                          (dy, argmax, dx, n * c, int(width), wo))
        return dx

    def global_pool(self, x):
        n, c, width = (int(s) for s in x.shape)
        y = self._dev_empty((n, 3 * c), x.dtype)
        argmax = self._dev_empty((n, c), "int32")
        if n * c:
            self._dev_launch("pool.cu", "global_pool_fwd", "PPPiii", x.dtype,
                             *G.warp_rows_grid(n * c), (x, y, argmax, n, c, width), {})
        return y, argmax

    def global_pool_backward(self, x, y, argmax, dy):
        n, c, width = (int(s) for s in x.shape)
        dx = self._dev_empty((n, c, width), x.dtype)
        self._flat_launch("pool.cu", "global_pool_bwd", "PPPPPiii", x.dtype, n * c * width,
                          (x, y, argmax, dy, dx, n, c, width))
        return dx

    # -- output ----------------------------------------------------------------------------

    def _softmax_rows(self, logits, labels):
        """(probs, per-row loss or None): softmax.cu's softmax_fwd, one warp per row."""
        n, k = (int(s) for s in logits.shape)
        probs = self._dev_empty((n, k), logits.dtype)
        nll = self._dev_empty((n,), logits.dtype) if labels is not None else None
        if n * k:
            self._dev_launch("softmax.cu", "softmax_fwd", "PPPPii", logits.dtype,
                             *G.warp_rows_grid(n), (logits, labels, probs, nll, n, k), {})
        return probs, nll

    def softmax(self, logits):
        return self._softmax_rows(logits, None)[0]

    def softmax_cross_entropy(self, logits, labels):
        probs, nll = self._softmax_rows(logits, labels)
        n, k = (int(s) for s in probs.shape)
        if n * k == 0:
            return float("nan"), probs
        total = self._dev_empty((1,), probs.dtype)
        self._dev_launch("reduce.cu", "sum_all", "PPq", probs.dtype, (1, 1, 1), BLOCK,
                         (nll, total, n), {})
        return float(self.to_host(total)[0]) / n, probs

    def softmax_cross_entropy_backward(self, probs, labels):
        n, k = (int(s) for s in probs.shape)
        g = self._dev_empty((n, k), probs.dtype)
        self._flat_launch("softmax.cu", "softmax_xent_bwd", "PPPii", probs.dtype, n * k,
                          (probs, labels, g, n, k))
        return g
