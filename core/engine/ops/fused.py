"""The contract's fused block op: batch normalisation, ReLU and 2-D max pooling as one op.

A 2-D CNN block is conv2d -> batchnorm -> relu -> maxpool2d; run as three ops, each
reads and writes the whole activation forward and backward. The fused op reads the
convolution's output once or twice and writes only the pooled map, and its backward
needs the pooled positions and one dense pass. The network uses it wherever the three
layers sit together on a backend that declares the group (:mod:`genrecnn.engine.blocks`).
Conventions in :mod:`genrecnn.engine.ops`; sizes and windows as :meth:`MapOps.maxpool2d`.
"""
from __future__ import annotations


class FusedOps:
    """norm_relu_maxpool2d (training, inference, backward)."""

    def norm_relu_maxpool2d_train(self, z, gamma, beta, eps: float, size: tuple[int, int],
                                  stride: tuple[int, int]):
        """Batch norm with the batch's statistics, ReLU, then max pooling, in one op.

        z[N, C, H, W] (a convolution's output), gamma[C], beta[C] ->
        (p[N, C, Ho, Wo], argmax[N, C, Ho, Wo] int32, mean[C], invstd[C]) where
        ``mean`` and ``invstd`` are :meth:`batchnorm_train`'s (over the M = N*H*W values
        of each channel), ``y = gamma * (z - mean) * invstd + beta``, ``(q, argmax) =
        maxpool2d(y, size, stride)`` (first maximum in row-major order, argmax = h * W + w
        in the (n, c) plane) and ``p = max(q, 0)``, which equals maxpool2d(relu(y)).
        The affine map is monotone per channel, so a backend may pool z itself (the
        maximum where gamma > 0, the minimum where gamma < 0, the window's first
        position where gamma == 0): where distinct z round to the same y, argmax may
        point at either of them; equal z give the first.
        """
        raise self._unsupported("norm_relu_maxpool2d_train")

    def norm_relu_maxpool2d_infer(self, z, gamma, beta, running_mean, running_var, eps: float,
                                  size: tuple[int, int], stride: tuple[int, int]):
        """Inference: p = maxpool2d(relu(batchnorm_infer(z, gamma, beta, running_mean,
        running_var, eps))) -> p[N, C, Ho, Wo] (no argmax)."""
        raise self._unsupported("norm_relu_maxpool2d_infer")

    def norm_relu_maxpool2d_backward(self, z, gamma, mean, invstd, argmax, p, dp,
                                     size: tuple[int, int], stride: tuple[int, int]):
        """Gradients of :meth:`norm_relu_maxpool2d_train` -> (dz[N, C, H, W], dgamma[C],
        dbeta[C]): maxpool2d's backward of ``dp * (p > 0)`` (ReLU passes where the
        selected normalised value is positive) gives dy, then :meth:`batchnorm_backward`.
        dy is zero off the argmax positions, so with ``zhat = (z - mean) * invstd``
        and M = N*H*W: ``dbeta = sum over pooled outputs of dp * (p > 0)``,
        ``dgamma = sum of dp * (p > 0) * zhat[argmax]`` and one dense pass
        ``dz = gamma * invstd * (dy - dbeta / M - zhat * dgamma / M)``. ``size`` and
        ``stride`` are the forward's: the windows that hold a position, so that pass may
        gather its dy from them instead of scattering into dz."""
        raise self._unsupported("norm_relu_maxpool2d_backward")


class ComposedFusedOps(FusedOps):
    """The fused ops as the composition of a backend's own batch-norm, max-pool and
    activation ops: what a backend inherits (listed before ``Backend``) until it has a
    single-pass kernel, so the network's block runs on it all the same, as fast as the
    three layers. It pools before the ReLU, as the definition does (the ReLU then runs
    on the pooled map only); the backward's ``relu`` mask comes from p, since p > 0
    exactly where the pooled normalised value is."""

    def norm_relu_maxpool2d_train(self, z, gamma, beta, eps, size, stride):
        y, mean, invstd = self.batchnorm_train(z, gamma, beta, eps)
        q, argmax = self.maxpool2d(y, size, stride)
        return self.activation("relu", q), argmax, mean, invstd

    def norm_relu_maxpool2d_infer(self, z, gamma, beta, running_mean, running_var, eps,
                                  size, stride):
        y = self.batchnorm_infer(z, gamma, beta, running_mean, running_var, eps)
        return self.activation("relu", self.maxpool2d(y, size, stride)[0])

    def norm_relu_maxpool2d_backward(self, z, gamma, mean, invstd, argmax, p, dp, size,
                                     stride):
        dq = self.activation_backward("relu", p, p, dp)
        dy = self.maxpool2d_backward(dq, argmax, z.shape[2], z.shape[3])
        return self.batchnorm_backward(z, gamma, mean, invstd, dy)
