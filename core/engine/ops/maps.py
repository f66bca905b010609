"""The contract's ops on 2-D maps, and the normalisation and regularisation layers a
from-scratch genre CNN needs: conv2d, maxpool2d, batchnorm, dropout.

Maps are ``[N, C, H, W]``: N examples, C channels, H rows (mel bands for the
input, which is one channel), W columns (time). Conventions in
:mod:`genrecnn.engine.ops`.
"""
from __future__ import annotations

from genrecnn.engine.ops.precision import precision_kwargs


def conv2d_out(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length of a convolution along one axis (zero padding ``pad`` each side)."""
    return (size + 2 * pad - kernel) // stride + 1


def pool2d_out(size: int, window: int, stride: int) -> int:
    """Output length of max pooling along one axis: windows that do not fit are dropped."""
    return (size - window) // stride + 1


# The dropout mask's hash (Chris Wellons' "lowbias32"), so every backend draws the
# same mask from the same key: element i of a call with key (seed, offset) is kept iff
#   k = lowbias32((seed * 0x9E3779B9 + offset) mod 2^32)
#   h = lowbias32((i * 0x9E3779B9 + k) mod 2^32)
#   (h >> 8) / 2^24 >= rate
# all arithmetic on unsigned 32-bit integers, i the flat C-order index (< 2^32). The last
# test is exact: with rate a float64, it is the integer test (h >> 8) >= ceil(rate * 2^24)
# (rate * 2^24 is exact); comparing against rate rounded to float32 is not the same test.
GOLDEN = 0x9E3779B9


def lowbias32(x):
    """The 32-bit integer hash of the dropout mask (works on Python ints and uint32 arrays)."""
    m = 0xFFFFFFFF
    x = x & m
    x ^= x >> 16
    x = (x * 0x7FEB352D) & m
    x ^= x >> 15
    x = (x * 0x846CA68B) & m
    x ^= x >> 16
    return x


class MapOps:
    """conv2d, maxpool2d, batchnorm, dropout (forward and backward)."""

    # -- 2-D convolution ------------------------------------------------------------------

    def conv2d(self, x, w, b, stride: tuple[int, int], padding: tuple[int, int],
               precision: str = "fp32"):
        """Convolution over (H, W) with zero padding and stride.

        x[N, C, H, W], w[F, C, KH, KW], b[F], ``stride = (sh, sw) >= 1``,
        ``padding = (ph, pw) >= 0`` -> y[N, F, Ho, Wo] with
        ``Ho = (H + 2 ph - KH) // sh + 1`` (>= 1), likewise Wo, and
        ``y[n, f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] * xp[n, c, i sh + u, j sw + v]``
        where ``xp`` is x with ph zero rows above and below and pw zero
        columns left and right (cross-correlation). ``precision``: operands rounded to
        tf32 / bf16 first, see :mod:`genrecnn.engine.ops.precision` (likewise for the
        backward ops).
        """
        raise self._unsupported("conv2d")

    def conv2d_backward(self, x, w, dy, stride: tuple[int, int], padding: tuple[int, int],
                        precision: str = "fp32"):
        """Gradients of :meth:`conv2d`: (x, w, dy[N, F, Ho, Wo]) -> (dx, dw, db), with
        dx[N, C, H, W] (padding positions dropped), dw[F, C, KH, KW], db[F]."""
        raise self._unsupported("conv2d_backward")

    def conv2d_backward_params(self, x, w, dy, stride: tuple[int, int],
                               padding: tuple[int, int], precision: str = "fp32"):
        """Only (dw, db) of :meth:`conv2d_backward`, for a first layer whose input
        gradient nobody needs. Optional: this default drops dx of the full backward."""
        _, dw, db = self.conv2d_backward(x, w, dy, stride, padding,
                                         **precision_kwargs(precision))
        return dw, db

    # -- 2-D max pooling ------------------------------------------------------------------

    def maxpool2d(self, x, size: tuple[int, int], stride: tuple[int, int]):
        """Max over (kh, kw) windows every (sh, sw): x[N, C, H, W] ->
        (y[N, C, Ho, Wo], argmax[N, C, Ho, Wo] int32), ``Ho = (H - kh) // sh + 1``
        (rows and columns past the last whole window are dropped), and
        ``argmax = h * W + w``, the position in its (n, c) plane of the window's
        first maximum in row-major order (rows outer), NaN counting as the
        maximum; ``y`` is x at ``argmax``. Needs H >= kh, W >= kw.
        """
        raise self._unsupported("maxpool2d")

    def maxpool2d_backward(self, dy, argmax, height: int, width: int):
        """Gradient of :meth:`maxpool2d`: dx[N, C, height, width], zero except
        ``dx.flat-in-plane[argmax] += dy`` (summed where windows share a maximum)."""
        raise self._unsupported("maxpool2d_backward")

    # -- batch normalisation ----------------------------------------------------------------

    def batchnorm_train(self, x, gamma, beta, eps: float):
        """Normalise each channel with the batch's own statistics.

        x[N, C, ...] (2, 3 or 4 axes), gamma[C], beta[C] -> (y, mean[C], invstd[C])
        where, over the m = N * (positions per channel) values of channel c,
        ``mean`` is their mean, ``var`` their biased variance, ``invstd =
        1 / sqrt(var + eps)`` and ``y = (x - mean) * invstd * gamma + beta``.
        """
        raise self._unsupported("batchnorm_train")

    def batchnorm_running_update(self, running_mean, running_var, mean, invstd, count: int,
                                 momentum: float, eps: float) -> None:
        """Fold one batch's statistics into the running ones, in place:
        ``running_mean = (1 - momentum) running_mean + momentum mean`` and
        ``running_var = (1 - momentum) running_var + momentum var * count / (count - 1)``
        (the unbiased variance; ``var = 1 / invstd**2 - eps``; no correction when
        ``count`` is 1)."""
        raise self._unsupported("batchnorm_running_update")

    def batchnorm_infer(self, x, gamma, beta, running_mean, running_var, eps: float):
        """Inference: ``y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta``
        per channel, for x[N, C, ...]."""
        raise self._unsupported("batchnorm_infer")

    def batchnorm_backward(self, x, gamma, mean, invstd, dy):
        """Gradients of :meth:`batchnorm_train` -> (dx, dgamma[C], dbeta[C]): with
        ``xhat = (x - mean) * invstd`` and sums over each channel's m values,
        ``dbeta = sum dy``, ``dgamma = sum dy * xhat`` and
        ``dx = gamma * invstd / m * (m dy - dbeta - xhat dgamma)``."""
        raise self._unsupported("batchnorm_backward")

    # -- dropout ------------------------------------------------------------------------------

    def dropout(self, x, rate: float, key):
        """Zero each element with probability ``rate`` and scale the rest by
        ``1 / (1 - rate)``, any shape; ``0 <= rate < 1``.

        ``key`` is an int32 device array [2] (seed, offset), read as unsigned
        32-bit integers; element i (flat C order) is kept by the hash rule
        above (:func:`lowbias32`), so a key gives the same mask on every
        backend and the backward pass recomputes it instead of storing it.
        """
        raise self._unsupported("dropout")

    def dropout_backward(self, dy, rate: float, key):
        """Gradient of :meth:`dropout` with the same ``key``: dy masked and scaled alike."""
        raise self._unsupported("dropout_backward")
