"""The contract's ops on sequences and vectors: the dissertation's layers.

Sequences are ``[N, C, W]`` (N examples, C channels, W time steps), vectors
``[N, I]``; conventions in :mod:`genrecnn.engine.ops`.
"""
from __future__ import annotations

from genrecnn.engine.ops.precision import precision_kwargs


class SequenceOps:
    """conv1d, maxpool1d, global_pool, dense, activation, softmax (forward and backward)."""

    # -- convolution along time --------------------------------------------------------

    def conv1d(self, x, w, b, precision: str = "fp32"):
        """Valid 1-D convolution over time with full-height filters.

        x[N, C, W], w[F, C, K], b[F] -> y[N, F, W-K+1] where
        ``y[n, f, t] = b[f] + sum_{c, k} w[f, c, k] * x[n, c, t + k]``
        (cross-correlation, as in every deep-learning library). Needs W >= K.
        ``precision``: operands rounded to tf32 / bf16 first, see
        :mod:`genrecnn.engine.ops.precision` (likewise for every product below).
        """
        raise self._unsupported("conv1d")

    def conv1d_backward(self, x, w, dy, precision: str = "fp32"):
        """Gradients of :meth:`conv1d`: (x, w, dy[N, F, W-K+1]) -> (dx, dw, db)

        dx[N, C, W] = sum over f, k of w[f, c, k] * dy[n, f, t - k];
        dw[F, C, K] = sum over n, t of dy[n, f, t] * x[n, c, t + k];
        db[F] = sum over n, t of dy[n, f, t].
        """
        raise self._unsupported("conv1d_backward")

    def conv1d_backward_params(self, x, w, dy, precision: str = "fp32"):
        """Only the parameter gradients of :meth:`conv1d`: (x, w, dy) -> (dw, db).

        Same dw and db as :meth:`conv1d_backward`. The network calls it for a
        first layer, whose input gradient nobody needs (for the dissertation's
        network that input gradient is a third of the whole backward pass).
        Optional: this default calls :meth:`conv1d_backward` and drops dx;
        override it to skip computing dx.
        """
        _, dw, db = self.conv1d_backward(x, w, dy, **precision_kwargs(precision))
        return dw, db

    # -- max pooling along time --------------------------------------------------------

    def maxpool1d(self, x, size: int, stride: int):
        """Max over windows of ``size`` steps taken every ``stride`` steps.

        x[N, C, W] -> (y[N, C, Wo], argmax[N, C, Wo] int32) with
        ``Wo = (W - size) // stride + 1`` (steps past the last whole window are
        dropped) and ``y[n, c, j] = x[n, c, argmax[n, c, j]]``; ``argmax`` is the
        absolute time index of the first maximum in window ``j``, NaN counting
        as the maximum (see "NaN" in :mod:`genrecnn.engine.ops`). ``stride <
        size`` gives overlapping windows. Needs W >= size >= 1, stride >= 1.
        """
        raise self._unsupported("maxpool1d")

    def maxpool1d_backward(self, dy, argmax, width: int):
        """Gradient of :meth:`maxpool1d`: dx[N, C, width], zero except
        ``dx[n, c, argmax[n, c, j]] += dy[n, c, j]`` (summed where overlapping
        windows share a maximum)."""
        raise self._unsupported("maxpool1d_backward")

    # -- global pooling over time --------------------------------------------------------

    def global_pool(self, x):
        """Mean, max and L2 norm of every row over time.

        x[N, C, W] -> (y[N, 3C], argmax[N, C] int32) with
        ``y[:, 0:C] = mean_t x``, ``y[:, C:2C] = max_t x`` (first maximum at
        ``argmax``, NaN counting as the maximum), ``y[:, 2C:3C] = sqrt(sum_t x**2)``.
        A 2-D map ``[N, C, H, W]`` is pooled over all its positions by reshaping
        it to ``[N, C, H*W]`` first.
        """
        raise self._unsupported("global_pool")

    def global_pool_backward(self, x, y, argmax, dy):
        """Gradient of :meth:`global_pool`: (x, y, argmax, dy[N, 3C]) -> dx[N, C, W]

        ``dx = dy_mean / W + onehot(argmax) * dy_max + x / l2 * dy_l2`` where the
        last term is 0 for rows whose L2 norm is 0.
        """
        raise self._unsupported("global_pool_backward")

    # -- fully connected -------------------------------------------------------------------

    def dense(self, x, w, b, precision: str = "fp32"):
        """x[N, I], w[I, O], b[O] -> y[N, O] = x @ w + b (``precision``: see
        :mod:`genrecnn.engine.ops.precision`)."""
        raise self._unsupported("dense")

    def dense_backward(self, x, w, dy, precision: str = "fp32"):
        """(x, w, dy[N, O]) -> (dx = dy @ w.T, dw = x.T @ dy, db = sum_n dy)."""
        raise self._unsupported("dense_backward")

    # -- elementwise activations -------------------------------------------------------

    def activation(self, kind: str, x, slope: float = 0.01):
        """Elementwise, any shape. ``kind`` is one of :data:`ACTIVATIONS`:
        relu max(x, 0); leaky_relu x if x > 0 else slope * x;
        sigmoid 1 / (1 + exp(-x)) (no overflow for large |x|); tanh. A NaN stays NaN in
        every kind, relu's included (as PyTorch's), so a diverging network shows it."""
        raise self._unsupported("activation")

    def activation_backward(self, kind: str, x, y, dy, slope: float = 0.01):
        """dx from input x, output y and dy: relu dy * (x > 0);
        leaky_relu dy * (1 if x > 0 else slope); sigmoid dy * y * (1 - y);
        tanh dy * (1 - y**2). A NaN in x is not > 0."""
        raise self._unsupported("activation_backward")

    # -- output --------------------------------------------------------------------------

    def softmax(self, logits):
        """logits[N, K] -> probs[N, K], rows summing to 1, computed after
        subtracting each row's max so that huge logits do not overflow."""
        raise self._unsupported("softmax")

    def softmax_cross_entropy(self, logits, labels):
        """(logits[N, K], labels[N] int32 in [0, K)) -> (loss, probs[N, K]).

        ``loss = -mean_n log softmax(logits)[n, labels[n]]`` as a Python float,
        from the log-sum-exp of max-shifted rows (finite for huge logits).
        """
        raise self._unsupported("softmax_cross_entropy")

    def softmax_cross_entropy_backward(self, probs, labels):
        """d loss / d logits = (probs - onehot(labels)) / N, shape [N, K]."""
        raise self._unsupported("softmax_cross_entropy_backward")
